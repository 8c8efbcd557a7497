"""The shipped sample conversation (assets/sample): a short scripted dialogue, two microphones.

Two people plan a picnic: nine turns with pauses, one overlap (B laughs in before A has
finished), and backchannels from the listener on the listener's own track. Spoken by two
freely licensed offline TTS voices through the training pipeline (voices.synthesize,
voices.augment for each person's voice and room, conversation.render_track and conversation.microphone
for the two microphones: gain, bleed of the partner's voice, room noise), so it sounds like
what the model was trained on. Everything is fixed here or drawn from one seed: rebuilding
gives the same bits with the same engines (`scripts/make_sample_conversation.py`).

Nothing here is used by training data generation (conversation.DATA_VERSION is unaffected).
"""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from model_runtime.paths import SAMPLE_DIR

from .conversation import ConversationConfig, Placed, microphone, render_track, speech_pauses, to_i16
from .voices import SR, AugmentConfig, Prosody, Voice, augment, synthesize

SEED = 20240607
LEAD_IN_S = 0.45  # silence before the first word
TAIL_S = 0.6  # silence after the last word


@dataclass(frozen=True)
class Line:
    who: int  # 0 = person A (track a.wav), 1 = person B (track b.wav)
    text: str
    gap_s: float = 0.4  # from the previous turn's last sound to this turn's first; negative: overlap


@dataclass(frozen=True)
class Backchannel:
    who: int  # the listener (its own track)
    text: str  # spelled as voices.BACKCHANNELS spells them ("um hum" is said as a hummed mm-hm)
    turn: int  # index in SCRIPT of the partner's turn it answers
    pause: int | None = None  # lands in this internal pause of that turn ...
    at: float = 0.5  # ... or, with pause=None, at this fraction of the turn's speech (over it)
    delay_s: float = 0.12  # reaction time after the pause starts


SCRIPT = (
    Line(0, "Hey, are we still on for the picnic on Saturday?"),
    Line(1, "Yes, definitely. I was thinking the lake, by the boathouse.", 0.45),
    Line(0, "Oh, I love that spot. What should I bring?", 0.35),
    Line(1, "Maybe sandwiches? I'll bring lemonade, and a blanket.", 0.55),
    Line(0, "Perfect. But last time, a duck stole half my sandwich!", 0.4),
    Line(1, "Ha, I remember that duck! It chased us to the car.", -0.45),  # laughs in over A's end
    Line(0, "So this time, the food stays in the basket.", 0.3),
    Line(1, "Deal. Let's meet at eleven, at the bus stop.", 0.5),
    Line(0, "Eleven works. See you there!", 0.35),
)
BACKCHANNELS = (
    Backchannel(0, "yeah", turn=1, at=0.72),
    Backchannel(0, "um hum", turn=3, pause=0),
    Backchannel(1, "right", turn=6, at=0.8),
)
BACKCHANNEL_LEVEL_DB = -4.0  # backchannels are said more softly than turns


@dataclass(frozen=True)
class Track:
    """One person: voice, their own microphone and its place in the room."""
    name: str  # file stem: a | b
    person: str
    voice: Voice
    description: str
    eq_highpass_hz: float
    gain_db: float  # track gain (the two microphones are set differently)
    bleed_db: float  # the partner's voice in this microphone, relative to the partner's own level
    bleed_delay_ms: float
    bleed_lowpass_hz: float
    snr_db: float  # own speech over the room noise
    noise_tilt: float  # 0 white .. 1 pink .. 2 brown

    def room(self):
        """voices.augment settings: fixed voice (no speed change), EQ, a small room's reverb."""
        hp = (self.eq_highpass_hz, self.eq_highpass_hz)
        return AugmentConfig(speed=(1.0, 1.0), rms_dbfs=-22.0, level_db=(-1.0, 1.0), eq_prob=1.0,
                             eq_highpass_hz=hp, eq_lowpass_hz=(7600.0, 7600.0), reverb_prob=1.0,
                             rt60_s=(0.3, 0.3), reverb_wet=(0.1, 0.1), noise_db=(-96.0, -96.0))

    def mic(self):
        """conversation.microphone settings, every range collapsed to this track's value."""
        fix = lambda v: (float(v), float(v))
        return ConversationConfig(gain_db=fix(self.gain_db), bleed_db=fix(self.bleed_db),
                                  bleed_delay_ms=fix(self.bleed_delay_ms),
                                  bleed_lowpass_hz=fix(self.bleed_lowpass_hz), snr_db=fix(self.snr_db),
                                  noise_tilt=fix(self.noise_tilt), hum_prob=0.0, augment=self.room())


TRACKS = (
    Track("a", "A", Voice("festival", "cmu_us_slt_arctic_hts"), "female, US English (Festival, HTS)",
          eq_highpass_hz=90.0, gain_db=-2.0, bleed_db=-22.0, bleed_delay_ms=3.0, bleed_lowpass_hz=4500.0,
          snr_db=38.0, noise_tilt=1.0),
    Track("b", "B", Voice("flite", "rms"), "male, US English (Flite, clustergen)",
          eq_highpass_hz=70.0, gain_db=-6.0, bleed_db=-20.0, bleed_delay_ms=4.0, bleed_lowpass_hz=4000.0,
          snr_db=35.0, noise_tilt=1.3),
)

CREDITS = (
    ("festival/cmu_us_slt_arctic_hts",
     "Festival 2.5 (University of Edinburgh, CSTR) with the CMU ARCTIC SLT HTS voice "
     "(Debian festvox-us-slt-hts; Carnegie Mellon University, Nagoya Institute of Technology)",
     "Festival: CSTR/Edinburgh free licence (use, modify, redistribute; keep the notice). Voice: "
     "EST-2003 / EST-2000 free licences (CMU), HTS parts BSD-3-Clause. See "
     "/usr/share/doc/festival/copyright and /usr/share/doc/festvox-us-slt-hts/copyright."),
    ("flite/rms",
     "CMU Flite 2.2 (Carnegie Mellon University, Language Technologies Institute) with its built-in "
     "cmu_us_rms voice (Debian flite / libflite1)",
     "CMU Flite licence (BSD-style: use, modify, redistribute; keep the notice, mark changes). See "
     "/usr/share/doc/flite/copyright."),
)


def engine_versions():
    """The installed engines' own version lines (the audio is bit-identical only with the same ones)."""
    out = {}
    for engine, cmd in (("flite", ["flite", "--version"]), ("festival", ["festival", "--version"])):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        line = next((ln for ln in text.splitlines() if re.search(r"version|festival", ln, re.I)), "")
        # "  version: flite-2.2-current Sep 2018 (http://cmuflite.org)" -> "flite-2.2-current Sep 2018"
        line = re.sub(r"^\s*(version|festival):\s*|\s*\(http[^)]*\)", "", line).strip()
        out[engine] = line or "not installed"
    return out


def missing_voices():
    """Why the sample cannot be rebuilt here ('' when it can): an engine or a voice is missing."""
    listed = {}
    for engine, cmd in (("flite", ["flite", "-lv"]), ("festival", ["festival", "-b", "(print (voice.list))"])):
        try:
            listed[engine] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            listed[engine] = None
    problems = []
    for tr in TRACKS:
        text = listed.get(tr.voice.engine)
        if text is None:
            problems.append(f"{tr.voice.engine} not installed")
        elif tr.voice.name not in re.findall(r"[\w.-]+", text):
            problems.append(f"{tr.voice.engine} has no voice {tr.voice.name}")
    return "; ".join(problems)


def _fixed_room(utt, track, rng, level_db=0.0):
    """The person's fixed voice, EQ and room (one room seed per track), level varying per utterance."""
    room_seed = SEED + 1000 * (TRACKS.index(track) + 1)
    u = augment(utt, rng, track.room(), room_rng=np.random.default_rng(room_seed))
    if level_db:
        u.audio *= np.float32(10 ** (level_db / 20))
    return u


def build(seed=SEED, cache=False):
    """(audio_a, audio_b, timeline): the two microphone tracks (float32, 16 kHz, already on the
    16-bit grid) and the timeline of turns, backchannels and overlaps in seconds."""
    rng = np.random.default_rng(seed)
    placed = ([], [])
    turns = []
    prev_end = None
    for k, line in enumerate(SCRIPT):
        track = TRACKS[line.who]
        utt = _fixed_room(synthesize(track.voice, line.text, Prosody(), cache=cache), track, rng)
        sb = utt.speech_bounds()
        onset = LEAD_IN_S if k == 0 else prev_end + line.gap_s
        start = onset - sb[0]
        placed[line.who].append(Placed(start, utt, "turn"))
        turns.append({"track": track.name, "start": onset, "end": start + sb[1], "text": line.text,
                      "_utt": utt, "_at": start})
        prev_end = start + sb[1]
    bcs = []
    for bc in BACKCHANNELS:
        track, turn = TRACKS[bc.who], turns[bc.turn]
        if turn["track"] == track.name:
            raise ValueError(f"backchannel {bc.text!r} answers its own speaker's turn {bc.turn}")
        utt = _fixed_room(synthesize(track.voice, bc.text, Prosody(), cache=cache), track, rng,
                          BACKCHANNEL_LEVEL_DB)
        pauses = speech_pauses(turn["_utt"], 0.1)
        if bc.pause is not None:
            on = turn["_at"] + pauses[bc.pause][0] + bc.delay_s
        else:
            on = turn["start"] + bc.at * (turn["end"] - turn["start"])
        sb = utt.speech_bounds()
        placed[bc.who].append(Placed(on - sb[0], utt, "backchannel"))
        bcs.append({"track": track.name, "start": on, "end": on + sb[1] - sb[0], "text": bc.text})
    end = max(it.start + it.utt.speech_bounds()[1] for side in placed for it in side)
    n = int(np.ceil((end + TAIL_S) * SR))
    clean = [render_track(placed[i], n)[0] for i in range(2)]
    mic_rng = [np.random.default_rng([seed, 1, i]) for i in range(2)]
    audio = [microphone(mic_rng[i], clean[i], clean[1 - i], TRACKS[i].mic()) for i in range(2)]
    for t in turns:
        del t["_utt"], t["_at"]
    return audio[0], audio[1], _timeline(turns, bcs, n / SR, seed)


def _overlaps(a, b):
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if e > s:
                out.append([s, e])
    return sorted(out)


def _timeline(turns, bcs, duration, seed):
    r = lambda x: round(float(x), 3)
    turns = [dict(t, start=r(t["start"]), end=r(t["end"])) for t in turns]
    bcs = [dict(b, start=r(b["start"]), end=r(b["end"])) for b in bcs]
    tracks = {}
    for tr in TRACKS:
        tracks[tr.name] = {
            "file": f"{tr.name}.wav", "person": tr.person, "voice": tr.voice.id, "description": tr.description,
            "segments": [[t["start"], t["end"]] for t in turns if t["track"] == tr.name],
            "backchannels": [[b["start"], b["end"], b["text"]] for b in bcs if b["track"] == tr.name],
        }
    ov = _overlaps(tracks["a"]["segments"], tracks["b"]["segments"])
    return {
        "about": "Speaking segments per track in seconds from the start of a.wav / b.wav (same length). "
                 "segments: the person's turns (first to last sound); backchannels: [start, end, text]; "
                 "overlaps: both people in a turn at once.",
        "sample_rate": SR, "duration_s": r(duration), "seed": seed, "tracks": tracks, "turns": turns,
        "backchannels": bcs, "overlaps": [[r(s), r(e)] for s, e in ov],
        "engines": engine_versions(),
    }


def readme(tl):
    """assets/sample/README.md from the timeline."""
    person = {tr.name: tr.person for tr in TRACKS}
    lines = [
        "# Sample conversation",
        "",
        f"Two people plan a picnic: {tl['duration_s']:.1f} s, two microphone tracks as a two-person "
        "recording gives them (16 kHz mono, 16-bit PCM, same length). Each track holds its own person "
        "loud and the other one faintly (bleed), with light room noise and a different gain per "
        "microphone. Turns have pauses, one overlap (B laughs in before A has finished) and the "
        "listener's backchannels are on the listener's own track.",
        "",
        "| track | person | voice |",
        "|---|---|---|",
    ]
    for d in tl["tracks"].values():
        lines.append(f"| `{d['file']}` | {d['person']} | {d['description']}: `{d['voice']}` |")
    lines += ["", "## Dialogue", "", "| # | start (s) | end (s) | who | line |", "|---|---|---|---|---|"]
    for k, t in enumerate(tl["turns"]):
        lines.append(f"| {k + 1} | {t['start']:.2f} | {t['end']:.2f} | {person[t['track']]} | "
                     f"{t['text']} |")
    lines += ["", "Backchannels (on the listener's own track):", ""]
    for b in tl["backchannels"]:
        lines.append(f"- {b['start']:.2f}–{b['end']:.2f} s, {person[b['track']]}: \"{b['text']}\"")
    lines += ["", "Overlaps (both speaking a turn): "
              + ", ".join(f"{s:.2f}–{e:.2f} s" for s, e in tl["overlaps"]) + ".", "",
              "`timeline.json` has the same in machine form (per-track `segments` and `backchannels` in "
              "seconds); the demo shades who is speaking from it.", "",
              "## Credits and licences", "",
              "The dialogue was written for Duet. The voices are offline text-to-speech, synthesised by "
              "Duet's training-data pipeline (`training`):", ""]
    for voice, what, lic in CREDITS:
        lines.append(f"- `{voice}` — {what}. Licence: {lic}")
    eng = tl["engines"]
    lines += ["", "Built with " + " and ".join(eng.values()) + ".", "",
              "## Rebuild", "", "```", ".venv/bin/python scripts/make_sample_conversation.py --out assets/sample",
              "```", "",
              f"Deterministic (seed {tl['seed']}): the same engines give the same bits "
              "(`tests/train/test_sample_conversation.py` checks). Needs flite and festival with the "
              "festvox-us-slt-hts voice (`make setup-train`). `--check` also prints each turn's level and "
              "what pocketsphinx recognises in it.", ""]
    return "\n".join(lines)


def write(out_dir, seed=SEED, cache=False):
    """Build and write a.wav, b.wav, timeline.json and README.md into out_dir; returns the timeline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a, b, tl = build(seed, cache)
    for name, x in (("a", a), ("b", b)):
        sf.write(out / f"{name}.wav", to_i16(x), SR, subtype="PCM_16")
    (out / "timeline.json").write_text(json.dumps(tl, indent=1) + "\n")
    (out / "README.md").write_text(readme(tl))
    return tl


def _words(s):
    return re.findall(r"[a-z']+", s.lower())


def check(out_dir):
    """Listen-check by analysis: levels per turn, clipping, and pocketsphinx on every turn (cut from
    the speaker's own microphone track, bleed and noise included). Returns the rows printed."""
    from .voices import pocketsphinx_available, sphinx_decode

    out = Path(out_dir)
    tl = json.loads((out / "timeline.json").read_text())
    audio = {k: sf.read(out / f"{k}.wav", dtype="int16")[0] for k in ("a", "b")}
    rows = []
    for k, x in audio.items():
        peak = np.abs(x.astype(np.int32)).max()
        print(f"{k}.wav: peak {20 * np.log10(peak / 32767):.1f} dBFS, clipped samples "
              f"{int(np.sum(np.abs(x.astype(np.int32)) >= 32767))}")
    asr = pocketsphinx_available()
    for i, t in enumerate(tl["turns"]):
        seg = audio[t["track"]][int(t["start"] * SR): int(t["end"] * SR)]
        rms = 20 * np.log10(np.sqrt(np.mean((seg.astype(np.float64) / 32767) ** 2)) + 1e-12)
        other = audio["b" if t["track"] == "a" else "a"][int(t["start"] * SR): int(t["end"] * SR)]
        rms_o = 20 * np.log10(np.sqrt(np.mean((other.astype(np.float64) / 32767) ** 2)) + 1e-12)
        row = {"turn": i + 1, "track": t["track"], "rms_dbfs": round(rms, 1), "other_track_rms_dbfs": round(rms_o, 1)}
        if asr:
            pad = int(0.15 * SR)
            seg = audio[t["track"]][max(0, int(t["start"] * SR) - pad): int(t["end"] * SR) + pad]
            hyp = sphinx_decode(np.ascontiguousarray(seg))
            ref, hw = _words(t["text"]), _words(hyp)
            row.update(recognised=hyp, word_overlap=f"{sum(w in hw for w in ref)}/{len(ref)}")
        rows.append(row)
        print(json.dumps(row))
    return rows


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="Build Duet's sample conversation (two microphone tracks).")
    ap.add_argument("--out", default=str(SAMPLE_DIR))
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--check", action="store_true", help="also print levels and pocketsphinx per turn")
    args = ap.parse_args(argv)
    tl = write(args.out, args.seed)
    print(f"wrote {args.out}: {tl['duration_s']:.2f} s, {len(tl['turns'])} turns, "
          f"{len(tl['backchannels'])} backchannels, {len(tl['overlaps'])} overlap(s)")
    if args.check:
        check(args.out)
    return 0
