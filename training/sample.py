"""The shipped sample conversations: short scripted dialogues, one microphone per person.

`TWO` (assets/sample): two people plan a picnic. `CAST` (assets/sample_cast): three people at a
table plan a trip. Each is a script (turns with pauses, one overlap, backchannels from listeners
on their own tracks) spoken by freely licensed offline TTS voices through the training pipeline
(voices.synthesize, voices.augment for each person's voice and room, conversation.render_track
and conversation.microphone for the microphones: gain, bleed of the other voices, room noise), so
it sounds like what the model was trained on. Everything is fixed here or drawn from one seed:
rebuilding gives the same bits with the same engines (`scripts/make_sample_conversation.py`).

Nothing here is used by training data generation (conversation.DATA_VERSION is unaffected).
"""

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np
import soundfile as sf

from model_runtime.paths import ASSETS, SAMPLE_CAST_DIR, SAMPLE_DIR, runtime_pythonpath

from .conversation import ConversationConfig, Placed, microphone, render_track, speech_pauses, to_i16
from .voices import SR, AugmentConfig, Prosody, Utterance, Voice, augment, engine_available, synthesize

LEAD_IN_S = 0.45  # silence before the first word
TAIL_S = 0.6  # silence after the last word
BACKCHANNEL_LEVEL_DB = -4.0  # backchannels are said more softly than turns


@dataclass(frozen=True)
class Line:
    who: int  # index into the sample's tracks: 0 = person A (a.wav), 1 = B (b.wav), ...
    text: str
    gap_s: float = 0.4  # from the previous turn's last sound to this turn's first; negative: overlap


@dataclass(frozen=True)
class Backchannel:
    who: int  # the listener (its own track)
    text: str  # spelled as voices.BACKCHANNELS spells them ("um hum" is said as a hummed mm-hm)
    turn: int  # index in the script of the other person's turn it answers
    pause: int | None = None  # lands in this internal pause of that turn ...
    at: float = 0.5  # ... or, with pause=None, at this fraction of the turn's speech (over it)
    delay_s: float = 0.12  # reaction time after the pause starts


@dataclass(frozen=True)
class Track:
    """One person: voice, their own microphone and its place in the room."""
    name: str  # file stem: a | b | c
    person: str
    voice: Voice
    description: str
    eq_highpass_hz: float
    gain_db: float  # track gain (every microphone is set differently)
    bleed_db: float  # the others' voices in this microphone, relative to their own level
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


@dataclass(frozen=True)
class Sample:
    """One sample conversation: where it lives, its script, voices and microphones, its README."""
    folder: Path
    seed: int
    script: tuple
    backchannels: tuple
    tracks: tuple
    title: str  # README heading
    intro: str  # README's first paragraph; {duration} is filled in
    needs: str  # README: what a rebuild needs installed
    command: str  # README: the rebuild command line

    @property
    def files(self):
        return tuple(f"{t.name}.wav" for t in self.tracks) + ("timeline.json", "README.md")


_SLT = Track("a", "A", Voice("festival", "cmu_us_slt_arctic_hts"), "female, US English (Festival, HTS)",
             eq_highpass_hz=90.0, gain_db=-2.0, bleed_db=-22.0, bleed_delay_ms=3.0, bleed_lowpass_hz=4500.0,
             snr_db=38.0, noise_tilt=1.0)
_RMS = Track("b", "B", Voice("flite", "rms"), "male, US English (Flite, clustergen)",
             eq_highpass_hz=70.0, gain_db=-6.0, bleed_db=-20.0, bleed_delay_ms=4.0, bleed_lowpass_hz=4000.0,
             snr_db=35.0, noise_tilt=1.3)
# The third voice is eSpeak NG's: a third engine, pitched above the other two so the three are
# told apart by ear (median F0 about 200 Hz, against 170 and 100), and recognised by pocketsphinx.
_F5 = Track("c", "C", Voice("espeak", "en-us+f5"), "female, US English (eSpeak NG, formant)",
            eq_highpass_hz=100.0, gain_db=-4.0, bleed_db=-21.0, bleed_delay_ms=3.5, bleed_lowpass_hz=4200.0,
            snr_db=36.0, noise_tilt=1.1)

TWO = Sample(
    folder=SAMPLE_DIR, seed=20240607,
    script=(
        Line(0, "Hey, are we still on for the picnic on Saturday?"),
        Line(1, "Yes, definitely. I was thinking the lake, by the boathouse.", 0.45),
        Line(0, "Oh, I love that spot. What should I bring?", 0.35),
        Line(1, "Maybe sandwiches? I'll bring lemonade, and a blanket.", 0.55),
        Line(0, "Perfect. But last time, a duck stole half my sandwich!", 0.4),
        Line(1, "Ha, I remember that duck! It chased us to the car.", -0.45),  # laughs in over A's end
        Line(0, "So this time, the food stays in the basket.", 0.3),
        Line(1, "Deal. Let's meet at eleven, at the bus stop.", 0.5),
        Line(0, "Eleven works. See you there!", 0.35),
    ),
    backchannels=(
        Backchannel(0, "yeah", turn=1, at=0.72),
        Backchannel(0, "um hum", turn=3, pause=0),
        Backchannel(1, "right", turn=6, at=0.8),
    ),
    tracks=(_SLT, _RMS),
    title="Sample conversation",
    intro="Two people plan a picnic: {duration:.1f} s, two microphone tracks as a two-person recording gives "
          "them (16 kHz mono, 16-bit PCM, same length). Each track holds its own person loud and the other "
          "one faintly (bleed), with light room noise and a different gain per microphone. Turns have "
          "pauses, one overlap (B laughs in before A has finished) and the listener's backchannels are on "
          "the listener's own track.",
    needs="Needs flite and festival with the festvox-us-slt-hts voice (`make setup-train`).",
    command=".venv/bin/python scripts/make_sample_conversation.py --out assets/sample",
)

CAST = Sample(
    folder=SAMPLE_CAST_DIR, seed=20250611,
    script=(
        Line(0, "Okay, so where are we going this summer? I vote for the mountains."),
        Line(1, "The mountains again? I was hoping for the coast this time.", 0.45),
        Line(2, "What about both? There's a lake up north, with a beach and hiking trails.", 0.5),
        Line(0, "Oh, that sounds lovely. How far is it?", 0.4),
        Line(2, "About four hours by train, through the forest.", 0.35),
        Line(1, "Four hours is fine, if somebody brings the snacks.", 0.6),
        Line(0, "Ha, you always say that!", -0.4),  # A laughs in over B's last words
        Line(2, "Okay. I'll book the cabin tonight. Friday to Sunday?", 0.8),
        Line(1, "Friday works for me.", 0.4),
        Line(0, "Me too. Let's do it!", 0.35),
    ),
    backchannels=(
        Backchannel(2, "yeah", turn=0, at=0.78),
        Backchannel(1, "um hum", turn=2, pause=0),
        Backchannel(0, "right", turn=4, at=0.75),
        Backchannel(2, "okay", turn=5, at=0.55),
    ),
    tracks=(_SLT, _RMS, _F5),
    title="Sample cast conversation",
    intro="Three people at a table plan a summer trip: {duration:.1f} s, three microphone tracks as a "
          "three-person recording gives them (16 kHz mono, 16-bit PCM, same length). Each track holds its "
          "own person loud and the other two faintly (bleed), with light room noise and a different gain "
          "per microphone. The turn passes among all three, with pauses, one overlap (A laughs in before B "
          "has finished) and backchannels from listeners on their own tracks.",
    needs="Needs flite, festival with the festvox-us-slt-hts voice, and espeak-ng (`make setup-train`).",
    command=".venv/bin/python scripts/make_sample_conversation.py --cast",
)

SAMPLES = {"two": TWO, "cast": CAST}

CREDITS = {
    "festival/cmu_us_slt_arctic_hts": (
        "Festival 2.5 (University of Edinburgh, CSTR) with the CMU ARCTIC SLT HTS voice "
        "(Debian festvox-us-slt-hts; Carnegie Mellon University, Nagoya Institute of Technology)",
        "Festival: CSTR/Edinburgh free licence (use, modify, redistribute; keep the notice). Voice: "
        "EST-2003 / EST-2000 free licences (CMU), HTS parts BSD-3-Clause. See "
        "/usr/share/doc/festival/copyright and /usr/share/doc/festvox-us-slt-hts/copyright."),
    "flite/rms": (
        "CMU Flite 2.2 (Carnegie Mellon University, Language Technologies Institute) with its built-in "
        "cmu_us_rms voice (Debian flite / libflite1)",
        "CMU Flite licence (BSD-style: use, modify, redistribute; keep the notice, mark changes). See "
        "/usr/share/doc/flite/copyright."),
    "espeak/en-us+f5": (
        "eSpeak NG 1.51 (Jonathan Duddington, Reece H. Dunn and contributors) with its en-us voice and "
        "f5 variant, through libespeak-ng (Debian libespeak-ng1 / espeak-ng-data)",
        "GPL-3.0-or-later (the program and its voice data; this folder holds only audio it spoke, not "
        "the program). See /usr/share/doc/espeak-ng-data/copyright."),
}

# Each engine's version command; engine_versions lists them in this order.
_VERSION_CMDS = {"flite": ["flite", "--version"], "festival": ["festival", "--version"],
                 "espeak": ["espeak-ng", "--version"]}


def engine_versions(sample=TWO):
    """The sample's engines' own version lines (the audio is bit-identical only with the same ones)."""
    out = {}
    used = {t.voice.engine for t in sample.tracks}
    for engine, cmd in _VERSION_CMDS.items():
        if engine not in used:
            continue
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        line = next((ln for ln in text.splitlines() if re.search(r"version|festival|espeak", ln, re.I)), "")
        # "  version: flite-2.2-current Sep 2018 (http://cmuflite.org)" -> "flite-2.2-current Sep 2018";
        # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/..." -> "eSpeak NG text-to-speech: 1.51"
        line = re.sub(r"^\s*(version|festival):\s*|\s*\(http[^)]*\)|\s+Data at:.*$", "", line).strip()
        out[engine] = line or "not installed"
    return out


def missing_voices(sample=TWO):
    """Why the sample cannot be rebuilt here ('' when it can): an engine or a voice is missing."""
    listed = {}
    for engine, cmd in (("flite", ["flite", "-lv"]), ("festival", ["festival", "-b", "(print (voice.list))"])):
        try:
            listed[engine] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            listed[engine] = None
    problems = []
    for tr in sample.tracks:
        if tr.voice.engine == "espeak":  # a library, not a command: ask it to speak
            if not engine_available("espeak"):
                problems.append("espeak-ng (libespeak-ng.so.1) not installed")
                continue
            try:
                _speak(tr.voice, "hi", cache=False)
            except RuntimeError:
                problems.append(f"espeak-ng has no voice {tr.voice.name}")
            continue
        text = listed.get(tr.voice.engine)
        if text is None:
            problems.append(f"{tr.voice.engine} not installed")
        elif tr.voice.name not in re.findall(r"[\w.-]+", text):
            problems.append(f"{tr.voice.engine} has no voice {tr.voice.name}")
    return "; ".join(problems)


# Speaks one text in a fresh interpreter and saves the Utterance's audio and phones.
_SPEAK_FRESH = ("import sys, numpy as np; from training.voices import Voice, synthesize; "
                "u = synthesize(Voice(sys.argv[1], sys.argv[2]), sys.argv[3], cache=False); "
                "np.savez(sys.argv[4], audio=u.audio, times=np.array([p[:2] for p in u.phones], float).reshape(-1, 2), "
                "names=np.array([p[2] for p in u.phones], str))")


def _speak(voice, text, cache):
    """voices.synthesize; eSpeak NG in a fresh process (never cached): its wave generator carries
    state from one utterance to the next within a process, so the same text would come out with
    other bits (and a sample longer) after whatever else was said there first."""
    if voice.engine != "espeak":
        return synthesize(voice, text, Prosody(), cache=cache)
    with tempfile.TemporaryDirectory(prefix="duet-sample-") as tmp:
        out = Path(tmp) / "utt.npz"
        r = subprocess.run([sys.executable, "-c", _SPEAK_FRESH, voice.engine, voice.name, text, str(out)],
                           capture_output=True, text=True, env=runtime_pythonpath(), timeout=120)
        if r.returncode != 0:
            raise RuntimeError((r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1])
        z = np.load(out)
        phones = [(float(s), float(e), str(p)) for (s, e), p in zip(z["times"], z["names"])]
        return Utterance(z["audio"], phones, voice.id, text)


def _fixed_room(utt, sample, who, rng, level_db=0.0):
    """The person's fixed voice, EQ and room (one room seed per track), level varying per utterance."""
    track = sample.tracks[who]
    u = augment(utt, rng, track.room(), room_rng=np.random.default_rng(sample.seed + 1000 * (who + 1)))
    if level_db:
        u.audio *= np.float32(10 ** (level_db / 20))
    return u


def build(sample=TWO, seed=None, cache=False):
    """([audio per track], timeline): the microphone tracks (float32, 16 kHz, already on the
    16-bit grid) and the timeline of turns, backchannels and overlaps in seconds."""
    seed = sample.seed if seed is None else seed
    tracks = sample.tracks
    rng = np.random.default_rng(seed)
    placed = tuple([] for _ in tracks)
    turns = []
    prev_end = None
    for k, line in enumerate(sample.script):
        track = tracks[line.who]
        utt = _fixed_room(_speak(track.voice, line.text, cache), sample, line.who, rng)
        sb = utt.speech_bounds()
        onset = LEAD_IN_S if k == 0 else prev_end + line.gap_s
        start = onset - sb[0]
        placed[line.who].append(Placed(start, utt, "turn"))
        turns.append({"track": track.name, "start": onset, "end": start + sb[1], "text": line.text,
                      "_utt": utt, "_at": start})
        prev_end = start + sb[1]
    bcs = []
    for bc in sample.backchannels:
        track, turn = tracks[bc.who], turns[bc.turn]
        if turn["track"] == track.name:
            raise ValueError(f"backchannel {bc.text!r} answers its own speaker's turn {bc.turn}")
        utt = _fixed_room(_speak(track.voice, bc.text, cache), sample, bc.who, rng,
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
    clean = [render_track(placed[i], n)[0] for i in range(len(tracks))]
    audio = []
    for i, tr in enumerate(tracks):
        # Every other voice bleeds in at its own level; with two people that is the partner's track itself.
        others = reduce(np.add, [c for j, c in enumerate(clean) if j != i])
        audio.append(microphone(np.random.default_rng([seed, 1, i]), clean[i], others, tr.mic()))
    for t in turns:
        del t["_utt"], t["_at"]
    return audio, _timeline(sample, turns, bcs, n / SR, seed)


def _overlaps(a, b):
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if e > s:
                out.append([s, e])
    return sorted(out)


def _timeline(sample, turns, bcs, duration, seed):
    r = lambda x: round(float(x), 3)
    turns = [dict(t, start=r(t["start"]), end=r(t["end"])) for t in turns]
    bcs = [dict(b, start=r(b["start"]), end=r(b["end"])) for b in bcs]
    tracks = {}
    for tr in sample.tracks:
        tracks[tr.name] = {
            "file": f"{tr.name}.wav", "person": tr.person, "voice": tr.voice.id, "description": tr.description,
            "segments": [[t["start"], t["end"]] for t in turns if t["track"] == tr.name],
            "backchannels": [[b["start"], b["end"], b["text"]] for b in bcs if b["track"] == tr.name],
        }
    names = list(tracks)
    ov = sorted(o for i, x in enumerate(names) for y in names[i + 1:]
                for o in _overlaps(tracks[x]["segments"], tracks[y]["segments"]))
    files = " / ".join(tracks[k]["file"] for k in names)
    who = "both people" if len(names) == 2 else "two people"
    return {
        "about": f"Speaking segments per track in seconds from the start of {files} (same length). "
                 "segments: the person's turns (first to last sound); backchannels: [start, end, text]; "
                 f"overlaps: {who} in a turn at once.",
        "sample_rate": SR, "duration_s": r(duration), "seed": seed, "tracks": tracks, "turns": turns,
        "backchannels": bcs, "overlaps": [[r(s), r(e)] for s, e in ov],
        "engines": engine_versions(sample),
    }


def _and(items):
    items = list(items)
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def readme(tl, sample=TWO):
    """The sample's README.md from its timeline."""
    person = {tr.name: tr.person for tr in sample.tracks}
    lines = [f"# {sample.title}", "", sample.intro.format(duration=tl["duration_s"]), "",
             "| track | person | voice |", "|---|---|---|"]
    for d in tl["tracks"].values():
        lines.append(f"| `{d['file']}` | {d['person']} | {d['description']}: `{d['voice']}` |")
    lines += ["", "## Dialogue", "", "| # | start (s) | end (s) | who | line |", "|---|---|---|---|---|"]
    for k, t in enumerate(tl["turns"]):
        lines.append(f"| {k + 1} | {t['start']:.2f} | {t['end']:.2f} | {person[t['track']]} | "
                     f"{t['text']} |")
    lines += ["", "Backchannels (on the listener's own track):", ""]
    for b in tl["backchannels"]:
        lines.append(f"- {b['start']:.2f}–{b['end']:.2f} s, {person[b['track']]}: \"{b['text']}\"")
    both = "both" if len(sample.tracks) == 2 else "two people"
    lines += ["", f"Overlaps ({both} speaking a turn): "
              + ", ".join(f"{s:.2f}–{e:.2f} s" for s, e in tl["overlaps"]) + ".", "",
              "`timeline.json` has the same in machine form (per-track `segments` and `backchannels` in "
              "seconds); the demo shades who is speaking from it.", "",
              "## Credits and licences", "",
              "The dialogue was written for Duet. The voices are offline text-to-speech, synthesised by "
              "Duet's training-data pipeline (`training`):", ""]
    for tr in sample.tracks:
        what, lic = CREDITS[tr.voice.id]
        lines.append(f"- `{tr.voice.id}` — {what}. Licence: {lic}")
    lines += ["", "Built with " + _and(tl["engines"].values()) + ".", "",
              "## Rebuild", "", "```", sample.command, "```", "",
              f"Deterministic (seed {tl['seed']}): the same engines give the same bits "
              f"(`tests/train/test_sample_conversation.py` checks). {sample.needs} `--check` also prints "
              "each turn's level and what pocketsphinx recognises in it.", ""]
    return "\n".join(lines)


def write(out_dir, sample=TWO, seed=None, cache=False):
    """Build and write the tracks (a.wav, b.wav, ...), timeline.json and README.md into out_dir;
    returns the timeline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio, tl = build(sample, seed, cache)
    for tr, x in zip(sample.tracks, audio):
        sf.write(out / f"{tr.name}.wav", to_i16(x), SR, subtype="PCM_16")
    (out / "timeline.json").write_text(json.dumps(tl, indent=1) + "\n")
    (out / "README.md").write_text(readme(tl, sample))
    return tl


def _words(s):
    return re.findall(r"[a-z']+", s.lower())


def _rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean((x.astype(np.float64) / 32767) ** 2)) + 1e-12)


def check(out_dir):
    """Listen-check by analysis: levels per turn, clipping, and pocketsphinx on every turn (cut from
    the speaker's own microphone track, bleed and noise included). Returns the rows printed."""
    from .voices import pocketsphinx_available, sphinx_decode

    out = Path(out_dir)
    tl = json.loads((out / "timeline.json").read_text())
    audio = {k: sf.read(out / d["file"], dtype="int16")[0] for k, d in tl["tracks"].items()}
    rows = []
    for k, x in audio.items():
        peak = np.abs(x.astype(np.int32)).max()
        print(f"{k}.wav: peak {20 * np.log10(peak / 32767):.1f} dBFS, clipped samples "
              f"{int(np.sum(np.abs(x.astype(np.int32)) >= 32767))}")
    asr = pocketsphinx_available()
    for i, t in enumerate(tl["turns"]):
        span = slice(int(t["start"] * SR), int(t["end"] * SR))
        rms = _rms_db(audio[t["track"]][span])
        rms_o = max(_rms_db(x[span]) for k, x in audio.items() if k != t["track"])  # the loudest other track
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

    ap = argparse.ArgumentParser(description="Build Duet's sample conversations (one microphone track per person).")
    ap.add_argument("--cast", action="store_true",
                    help=f"the three-person sample (default folder {CAST.folder.relative_to(ASSETS.parent)})")
    ap.add_argument("--out", default="", help=f"folder (default {TWO.folder.relative_to(ASSETS.parent)})")
    ap.add_argument("--seed", type=int, default=None, help="another take (default: the sample's own seed)")
    ap.add_argument("--check", action="store_true", help="also print levels and pocketsphinx per turn")
    args = ap.parse_args(argv)
    sample = CAST if args.cast else TWO
    out = args.out or str(sample.folder)
    tl = write(out, sample, args.seed)
    print(f"wrote {out}: {tl['duration_s']:.2f} s, {len(tl['turns'])} turns, "
          f"{len(tl['backchannels'])} backchannels, {len(tl['overlaps'])} overlap(s)")
    if args.check:
        check(out)
    return 0
