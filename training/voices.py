"""Speech with exact phoneme timings: offline TTS engines and real LibriSpeech speakers.

Every source yields an `Utterance`: 16 kHz mono float32 audio plus phones (start, end, ARPAbet
without stress, 'SIL' for silence) in seconds from the audio's first sample. Timings are what
the animator lip-syncs to, so every transformation here (speed, reverb, EQ) keeps them true.

Engines:
- flite voices kal, kal16, awb, rms, slt: `-psdur` prints phone end times.
- festival voices (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts): `utt.save.segs`.
- espeak-ng variants through libespeak-ng's phoneme events (IPA, audio positions in ms).
- real read speech (shared/data/librispeech): pocketsphinx recognises, then force-aligns; the
  alignment is cached on disk because it costs ~0.3 s per second of audio.
"""

import ctypes
import functools
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfilt

from model_runtime.audio import resample
from model_runtime.timebase import SAMPLE_RATE

from . import CACHE_DIR, LIBRISPEECH_DIR

SR = SAMPLE_RATE

# --------------------------------------------------------------------------------------------
# Phones

ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY",
                  "UH", "UW")
ARPABET_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P",
                      "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH")
ARPABET = ARPABET_VOWELS + ARPABET_CONSONANTS + ("SIL",)
_ARPA_SET = set(ARPABET)
# flite / festival phone names that are not plain ARPAbet.
_TTS_ALIASES = {"pau": "SIL", "h#": "SIL", "brth": "SIL", "ax": "AH", "axr": "ER", "ix": "IH",
                "dx": "D", "nx": "N", "el": "L", "em": "M", "en": "N", "hv": "HH", "q": "T",
                "ux": "UW", "ah0": "AH"}

# espeak-ng IPA -> ARPAbet, matched longest first; stress and length marks are stripped first.
_IPA = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "ɔɪ": "OY", "əʊ": "OW", "tʃ": "CH", "dʒ": "JH",
    "ɑ": "AA", "ɒ": "AA", "æ": "AE", "a": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER",
    "ɜ": "ER", "ɔ": "AO", "ɛ": "EH", "e": "EH", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "o": "OW",
    "ʊ": "UH", "u": "UW", "b": "B", "d": "D", "ð": "DH", "f": "F", "ɡ": "G", "g": "G", "h": "HH",
    "k": "K", "l": "L", "ɫ": "L", "m": "M", "n": "N", "ŋ": "NG", "p": "P", "ɹ": "R", "r": "R",
    "s": "S", "ʃ": "SH", "t": "T", "ɾ": "D", "ʔ": "T", "θ": "TH", "v": "V", "w": "W", "j": "Y",
    "z": "Z", "ʒ": "ZH", "x": "HH", "ç": "HH", "ʍ": "W",
}
_IPA_KEYS = sorted(_IPA, key=len, reverse=True)


def normalize_phone(name):
    """Any engine's phone name -> ARPAbet without stress, 'SIL' for silence/noise/unknown."""
    n = name.strip()
    low = n.lower()
    if low in _TTS_ALIASES:
        return _TTS_ALIASES[low]
    up = re.sub(r"\d", "", n).upper()
    return up if up in _ARPA_SET else "SIL"


def ipa_to_arpabet(ipa):
    """espeak-ng IPA phoneme string -> list of ARPAbet phones (may be empty for pauses)."""
    s = re.sub(r"[ˈˌːˑ̩̃ʲʰ\-_|]", "", ipa)
    out = []
    while s:
        for k in _IPA_KEYS:
            if s.startswith(k):
                out.append(_IPA[k])
                s = s[len(k):]
                break
        else:
            s = s[1:]  # unknown symbol: skip rather than invent a phone
    return out


@dataclass
class Utterance:
    audio: np.ndarray  # (N,) float32, 16 kHz
    phones: list  # [(start_s, end_s, ARPAbet)], contiguous, covering the speech
    voice: str  # e.g. "flite/slt", "espeak/en-us+f3", "libri/103"
    text: str = ""
    words: list = field(default_factory=list)  # [(start_s, end_s, word)] where known

    @property
    def duration(self):
        return len(self.audio) / SR

    def speech_bounds(self):
        """(first, last) time of a non-silent phone, or None."""
        sp = [(s, e) for s, e, p in self.phones if p != "SIL"]
        return (sp[0][0], sp[-1][1]) if sp else None


def _ends_to_phones(pairs):
    """[(phone, end_s)] -> contiguous [(start, end, ARPAbet)]."""
    out, t0 = [], 0.0
    for ph, end in pairs:
        if end > t0:
            out.append((t0, end, normalize_phone(ph)))
            t0 = end
    return out


# --------------------------------------------------------------------------------------------
# Voices and text

@dataclass(frozen=True)
class Voice:
    engine: str  # flite | festival | espeak | libri
    name: str  # engine's voice name (speaker id for libri)

    @property
    def id(self):
        return f"{self.engine}/{self.name}"


FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
ESPEAK_VOICES = ("en-us", "en-us+f3", "en-us+m3", "en-us+f2", "en+m4", "en-gb-scotland+f4",
                 "en-us+m7", "en-029+f1", "en-gb-x-rp+m2", "en-us+f5")
# Held out: never in training. One per engine at least, so every engine is also tested.
TEST_TTS_VOICES = ("flite/rms", "festival/ked_diphone", "espeak/en-gb-scotland+f4", "espeak/en-us+f5")


def tts_voices():
    return ([Voice("flite", v) for v in FLITE_VOICES] + [Voice("festival", v) for v in FESTIVAL_VOICES]
            + [Voice("espeak", v) for v in ESPEAK_VOICES])


def engine_available(engine):
    if engine == "flite":
        return shutil.which("flite") is not None
    if engine == "festival":
        return shutil.which("festival") is not None
    if engine == "espeak":
        return _espeak_lib() is not None
    if engine == "libri":
        return LIBRISPEECH_DIR.is_dir()
    return False


_OPENERS = ("", "", "", "well, ", "so, ", "actually, ", "you know, ", "honestly, ", "okay, ", "oh, ",
            "I mean, ", "and ", "but ")
_SUBJ = ("I", "we", "my sister", "the team", "our neighbour", "my friend", "the manager", "they",
         "everyone", "nobody", "the kids", "my dad")
_VERB = ("went to", "talked about", "looked at", "thought about", "finished", "started", "fixed",
         "forgot about", "moved", "painted", "cooked", "visited", "borrowed", "bought", "found")
_OBJ = ("the old bridge", "a blue bicycle", "the garden", "that new restaurant", "the meeting notes",
        "a pile of books", "the kitchen", "my brother's car", "the museum downtown", "some fresh bread",
        "the whole project", "a broken window", "the summer plans", "the quiet beach", "the phone bill")
_WHEN = ("yesterday", "last week", "this morning", "on Monday", "after lunch", "a while ago",
         "again", "for the first time", "before the rain", "at midnight", "all afternoon")
_TEMPLATES = (
    "{o}{s} {v} {ob} {w}.",
    "{o}{s} {v} {ob}, and then {s2} {v2} {ob2}.",
    "do you remember when {s} {v} {ob} {w}?",
    "{o}it was strange, because {s} {v} {ob} {w}.",
    "{o}I really think {s} should have {v3} {ob}.",
    "what do you think about {ob}?",
    "{o}that's {adj}, I had no idea.",
    "{o}the thing is, {s} {v} {ob} and nobody noticed.",
    "maybe we could see {ob} {w}, if you want.",
    "{o}I'm not sure, {s} {v} {ob} but it was {adj}.",
    "how long did it take to get to {ob}?",
    "{o}no way, {s} {v} {ob} {w}?",
    "{o}right, and after that we {v2} {ob2}, which was {adj}.",
)
_ADJ = ("amazing", "pretty funny", "a bit weird", "really hard", "so boring", "wonderful", "terrible",
        "interesting", "surprising", "lovely")
_PAST_PART = {"went to": "gone to", "talked about": "talked about", "looked at": "looked at",
              "thought about": "thought about", "finished": "finished", "started": "started",
              "fixed": "fixed", "forgot about": "forgotten about", "moved": "moved", "painted": "painted",
              "cooked": "cooked", "visited": "visited", "borrowed": "borrowed", "bought": "bought",
              "found": "found"}
# Spelled so every engine says them as people do: flite and espeak-ng spell out "mm" and "hmm"
# letter by letter ("em em"), but say "um hum" as a hummed mm-hm.
BACKCHANNELS = ("um hum", "uh hum", "yeah", "right", "uh huh", "okay", "yes", "I see", "really",
                "oh wow", "sure", "true", "oh")


def random_sentence(rng):
    t = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    pick = lambda seq: seq[rng.integers(len(seq))]
    v = pick(_VERB)
    s = t.format(o=pick(_OPENERS), s=pick(_SUBJ), v=v, ob=pick(_OBJ), w=pick(_WHEN), s2=pick(_SUBJ),
                 v2=pick(_VERB), ob2=pick(_OBJ), v3=_PAST_PART[v], adj=pick(_ADJ))
    return s[0].upper() + s[1:]


def random_text(rng, n_sentences):
    return " ".join(random_sentence(rng) for _ in range(n_sentences))


# --------------------------------------------------------------------------------------------
# Engines

@dataclass(frozen=True)
class Prosody:
    stretch: float = 1.0  # duration stretch (>1 slower)
    pitch: float = 0.0  # engine pitch offset in [-1, 1] where the engine supports it


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def _synth_flite(voice, text, pros, tmp):
    wav = os.path.join(tmp, "f.wav")
    out = _run(["flite", "-voice", voice, "--setf", f"duration_stretch={pros.stretch:.3f}", "-psdur",
                "-t", text, "-o", wav]).stdout
    pairs = []
    for tok in out.split():
        ph, _, end = tok.rpartition(":")
        if ph:
            pairs.append((ph, float(end)))
    return wav, _ends_to_phones(pairs)


def _synth_festival(voice, text, pros, tmp):
    wav, segs, scm = (os.path.join(tmp, n) for n in ("f.wav", "f.segs", "f.scm"))
    clean = re.sub(r'["\\]', "", text)
    with open(scm, "w") as f:
        f.write(f"(voice_{voice})\n(Parameter.set 'Duration_Stretch {pros.stretch:.3f})\n"
                f'(set! utt (utt.synth (Utterance Text "{clean}")))\n'
                f"(utt.save.wave utt \"{wav}\" 'riff)\n(utt.save.segs utt \"{segs}\")\n")
    _run(["festival", "-b", scm])
    pairs = []
    with open(segs) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] != "#":
                pairs.append((parts[2], float(parts[0])))
    return wav, _ends_to_phones(pairs)


_ESPEAK = {"lib": None, "tried": False, "lock": threading.Lock()}


def _espeak_lib():
    if not _ESPEAK["tried"]:
        _ESPEAK["tried"] = True
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1")
            # AUDIO_OUTPUT_SYNCHRONOUS; options: phoneme events (1) as IPA (2).
            rate = lib.espeak_Initialize(2, 0, None, 1 | 2)
            _ESPEAK.update(lib=lib if rate > 0 else None, rate=rate)
        except OSError:
            _ESPEAK["lib"] = None
    return _ESPEAK["lib"]


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT from speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_SYNTH_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_EV_PHONEME, _EV_END = 7, 5


def _synth_espeak(voice, text, pros):
    lib = _espeak_lib()
    if lib is None:
        raise RuntimeError("libespeak-ng.so.1 not available")
    chunks, events = [], []

    def cb(wav, n, ev):
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != 0:
            e = ev[i]
            if e.type == _EV_PHONEME:
                events.append((e.audio_position / 1000.0, bytes(e.id.string).split(b"\0")[0].decode(
                    "utf-8", "replace")))
            elif e.type == _EV_END:
                events.append((e.audio_position / 1000.0, ""))
            i += 1
        return 0

    with _ESPEAK["lock"]:
        c = _SYNTH_CB(cb)
        lib.espeak_SetSynthCallback(c)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice}")
        lib.espeak_SetParameter(1, int(round(165 / pros.stretch)), 0)  # words per minute
        lib.espeak_SetParameter(3, int(round(50 + 25 * pros.pitch)), 0)  # base pitch 0..100
        b = text.encode()
        lib.espeak_Synth(b, len(b) + 1, 0, 0, 0, 0, None, None)
        lib.espeak_Synchronize()
    audio = (np.concatenate(chunks).astype(np.float32) / 32768.0) if chunks else np.zeros(1, np.float32)
    dur = len(audio) / _ESPEAK["rate"]
    phones, t_prev = [], 0.0
    events.sort(key=lambda e: e[0])
    bounds = [(t, arp) for t, ipa in events for arp in [ipa_to_arpabet(ipa)]]
    for k, (t, arp) in enumerate(bounds):
        t_next = bounds[k + 1][0] if k + 1 < len(bounds) else dur
        t_next = min(t_next, dur)
        if t > t_prev:
            phones.append((t_prev, t, "SIL"))
        if t_next <= t:
            continue
        if arp:  # a diphthong-plus-r event ('ɑːɹ') is split evenly between its phones
            step = (t_next - t) / len(arp)
            phones += [(t + i * step, t + (i + 1) * step, p) for i, p in enumerate(arp)]
        elif t_next - t < 0.1 and phones and phones[-1][2] != "SIL":
            # A short empty event inside speech is a word boundary, not a pause (it measures as
            # loud as its neighbours): the previous phone goes on.
            phones[-1] = (phones[-1][0], t_next, phones[-1][2])
        else:
            phones.append((t, t_next, "SIL"))
        t_prev = t_next
    if t_prev < dur:
        phones.append((t_prev, dur, "SIL"))
    return audio, _ESPEAK["rate"], _merge_sil(phones)


def _merge_sil(phones):
    out = []
    for s, e, p in phones:
        if out and p == "SIL" and out[-1][2] == "SIL":
            out[-1] = (out[-1][0], e, "SIL")
        else:
            out.append((s, e, p))
    return out


def _cache_path(kind, key):
    h = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return CACHE_DIR / kind / f"{h}.npz"


def synthesize(voice: Voice, text: str, pros: Prosody = Prosody(), cache=True) -> Utterance:
    """TTS one text with exact phone timings, resampled to 16 kHz (cached by content)."""
    key = {"v": voice.id, "t": text, "s": round(pros.stretch, 3), "p": round(pros.pitch, 3), "ver": 2}
    path = _cache_path("tts", key)
    if cache and path.exists():
        z = np.load(path, allow_pickle=False)
        phones = [(float(s), float(e), str(p)) for (s, e), p in zip(z["times"], z["names"])]
        return Utterance(z["audio"].astype(np.float32) / 32767, phones, voice.id, text)
    if voice.engine == "espeak":
        audio, rate, phones = _synth_espeak(voice.name, text, pros)
    else:
        with tempfile.TemporaryDirectory(prefix="duet-tts-") as tmp:
            fn = _synth_flite if voice.engine == "flite" else _synth_festival
            wav, phones = fn(voice.name, text, pros, tmp)
            audio, rate = sf.read(wav, dtype="float32", always_2d=True)
            audio = audio[:, 0]
    if rate != SR:
        audio = resample(audio, rate, SR)
    dur = len(audio) / SR
    phones = [(min(s, dur), min(e, dur), p) for s, e, p in phones if s < dur]
    # Kept as 16-bit PCM (what the engines produce): half the cache, and a cached utterance is
    # bit-identical to a fresh one.
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    utt = Utterance(pcm.astype(np.float32) / 32767, phones, voice.id, text)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_suffix(f".{os.getpid()}.tmp.npz")  # loader workers may race
        np.savez(tmp_path, audio=pcm, times=np.array([(s, e) for s, e, _ in phones], np.float64),
                 names=np.array([p for _, _, p in phones]))
        os.replace(tmp_path, path)
    return utt


# --------------------------------------------------------------------------------------------
# Real speakers: LibriSpeech + pocketsphinx

ALIGN_VERSION = 2  # bump to redo cached failures after an aligner change


def librispeech_files(root=None):
    """{speaker_id: [flac paths]} of the shared LibriSpeech excerpt (read in place)."""
    root = Path(root or LIBRISPEECH_DIR)
    out = {}
    for p in sorted(root.rglob("*.flac")):
        out.setdefault(p.name.split("-")[0], []).append(p)
    return out


# The alignments of the shared LibriSpeech excerpt, committed beside this module (phone and word
# timings and the recognised text, no audio). Why: pocketsphinx recognition takes 4-22 s of one
# core per utterance (there are no transcripts to force-align against), 24-36 core-minutes for the
# 351 utterances on a fresh machine, and the result never changes for the same audio and aligner. Each
# entry holds the sha1 of the .flac it came from; an utterance whose file differs, or that the
# store lacks, is aligned afresh. `python -m training.voices --jobs 2 --write-store` rebuilds it;
# tests/train/test_voices.py re-aligns one stored utterance and checks it comes out the same.
ALIGN_STORE = Path(__file__).with_name("librispeech_alignments.json.gz")


@functools.lru_cache(maxsize=1)
def _align_store():
    """{utterance stem: record} of ALIGN_STORE, or {} when it is absent or of another version."""
    if not ALIGN_STORE.exists():
        return {}
    with gzip.open(ALIGN_STORE, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return data["utterances"] if data.get("version") == ALIGN_VERSION else {}


def stored_alignment(path, data=None):
    """The committed alignment of this .flac (`data`: its bytes, when already read), or None (not
    stored, or the file has changed)."""
    rec = _align_store().get(Path(path).stem)
    sha1 = hashlib.sha1(Path(path).read_bytes() if data is None else data).hexdigest()
    if rec is None or rec.get("sha1") != sha1:
        return None
    return {k: v for k, v in rec.items() if k != "sha1"}


def write_align_store(records):
    """ALIGN_STORE from {flac path: its alignment record}, every record keyed by its file's sha1."""
    from importlib.metadata import version

    utts = {Path(f).stem: {"sha1": hashlib.sha1(Path(f).read_bytes()).hexdigest(), **rec}
            for f, rec in records.items()}
    data = {"version": ALIGN_VERSION, "aligner": "pocketsphinx " + version("pocketsphinx"), "utterances": utts}
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    with open(ALIGN_STORE, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(text)  # mtime 0: the same alignments give the same bytes
    _align_store.cache_clear()


def alignments_cached():
    """True when real-speech alignments exist without pocketsphinx: committed (ALIGN_STORE) or
    carried to this machine's cache (2 MB for the whole shared LibriSpeech excerpt)."""
    d = CACHE_DIR / "align"
    return bool(_align_store()) or (d.is_dir() and any(d.glob("*.json")))


def pocketsphinx_available():
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def sphinx_decode(audio_i16, align_text=None, **opts):
    from pocketsphinx import Decoder

    # A fresh Decoder per utterance: a reused one sometimes fails with "Failed to stop utterance
    # processing" (pocketsphinx 5). loglevel FATAL keeps its INFO chatter off stderr.
    d = Decoder(samprate=SR, loglevel="FATAL", **opts)
    raw = audio_i16.tobytes()
    if align_text is None:
        d.start_utt()
        d.process_raw(raw, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp else ""
    d.set_align_text(align_text)
    d.start_utt()
    d.process_raw(raw, full_utt=True)
    d.end_utt()
    d.set_alignment()
    d.start_utt()
    d.process_raw(raw, full_utt=True)
    d.end_utt()
    words, phones = [], []
    for w in d.get_alignment():
        ws, wd = w.start / 100.0, w.duration / 100.0
        if w.name not in ("<s>", "</s>", "<sil>") and not w.name.startswith("+"):
            words.append((ws, ws + wd, re.sub(r"\(\d+\)$", "", w.name)))
        for p in w:
            phones.append((p.start / 100.0, (p.start + p.duration) / 100.0, normalize_phone(p.name)))
    return words, phones


def align_real(path, cache=True):
    """Recognise then force-align one real utterance. Returns Utterance, or None on failure.

    The alignment (not the audio) is cached; the audio is always read from shared/ in place.
    """
    path = Path(path)
    audio, rec = _alignment(path, cache)
    if rec is None or not rec["ok"]:
        return None
    speaker = path.name.split("-")[0]
    phones = _merge_sil(_fill_gaps([tuple(p) for p in rec["phones"]], len(audio) / SR))
    words = [tuple(w) for w in rec["words"]]
    return Utterance(np.ascontiguousarray(audio, np.float32), phones, f"libri/{speaker}", rec["text"], words)


def _alignment(path, cache=True):
    """(16 kHz mono audio of one real utterance, its alignment record or None when it needs
    pocketsphinx and this machine lacks it). Looked up in this machine's cache, then in ALIGN_STORE,
    then aligned (and cached)."""
    data = path.read_bytes()  # read once: decoded here, hashed for the store
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SR:
        audio = resample(audio, rate, SR)
    cpath = CACHE_DIR / "align" / f"{path.stem}.json"
    rec = None
    if cache:
        rec = json.loads(cpath.read_text()) if cpath.exists() else stored_alignment(path, data)
    if rec is None or (not rec["ok"] and rec.get("version", 1) < ALIGN_VERSION):
        if not pocketsphinx_available():  # e.g. a machine that only got the alignment cache
            return audio, None
        rec = align_audio(audio)
        if cache:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            tmp = cpath.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, cpath)
    return audio, rec


def align_audio(audio, text=None):
    """pocketsphinx on 16 kHz float audio: recognise (unless `text` is given), then force-align.

    Returns {"ok", "text", "words": [(s, e, w)], "phones": [(s, e, ARPAbet)]}."""
    i16 = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    rec = {"ok": False, "text": "", "words": [], "phones": [], "version": ALIGN_VERSION}
    try:
        text = sphinx_decode(i16) if text is None else text
    except (RuntimeError, ValueError) as exc:
        rec["error"] = str(exc)[:200]
        return rec
    rec["text"] = text
    # About 1 in 6 real utterances fails the default alignment with "Failed to stop utterance
    # processing"; the same text then aligns with the bestpath pass off.
    for method, opts in (("align", {}), ("align-nobestpath", {"bestpath": False})):
        if not text.strip():
            break
        try:
            words, phones = sphinx_decode(i16, text, **opts)
        except (RuntimeError, ValueError) as exc:
            rec["error"] = str(exc)[:200]
            continue
        if phones:
            rec.update(ok=True, words=words, phones=phones, method=method)
            rec.pop("error", None)
            break
    return rec


def _fill_gaps(phones, dur):
    out, t = [], 0.0
    for s, e, p in sorted(phones):
        if s > t + 1e-6:
            out.append((t, s, "SIL"))
        s = max(s, t)
        if e > s:
            out.append((s, e, p))
            t = e
    if t < dur:
        out.append((t, dur, "SIL"))
    return out


def phrase_spans(utt: Utterance, min_pause=0.18, min_len=0.6):
    """(start, end) of the phrases of a long real utterance, split at pauses >= min_pause, with
    a little room before the first and after the last sound of each."""
    cuts, start = [], None
    for s, e, p in utt.phones:
        if p != "SIL" and start is None:
            start = s
        if p == "SIL" and start is not None and e - s >= min_pause:
            cuts.append((start, s))
            start = None
    if start is not None:
        last = utt.speech_bounds()
        cuts.append((start, last[1]))
    return [(max(0.0, a - 0.05), min(utt.duration, b + 0.08)) for a, b in cuts if b - a >= min_len]


def split_phrases(utt: Utterance, min_pause=0.18, min_len=0.6):
    """Cut a long real utterance at pauses into phrases (each an Utterance, times re-based)."""
    return [cut(utt, a, b) for a, b in phrase_spans(utt, min_pause, min_len)]


def cut(utt: Utterance, a, b):
    """Sub-utterance between a and b seconds (phones clipped and re-based to the cut)."""
    a, b = max(0.0, a), min(utt.duration, b)
    i0, i1 = int(round(a * SR)), int(round(b * SR))
    phones = [(max(s, a) - a, min(e, b) - a, p) for s, e, p in utt.phones if e > a and s < b]
    words = [(s - a, e - a, w) for s, e, w in utt.words if s >= a and e <= b]
    return Utterance(utt.audio[i0:i1].copy(), phones, utt.voice, utt.text, words)


# --------------------------------------------------------------------------------------------
# Augmentation: speed, level, EQ, reverb, noise (timings stay true)

@dataclass(frozen=True)
class AugmentConfig:
    speed: tuple = (0.92, 1.08)  # tape-style: tempo and pitch together; timings scale by 1/speed
    rms_dbfs: float = -24.0  # speech level before the track gain: real speech peaks ~20 dB higher
    level_db: tuple = (-4.0, 2.0)  # per utterance (the track gain varies more)
    eq_prob: float = 0.7
    eq_highpass_hz: tuple = (60.0, 300.0)  # cheap mics and phones cut the lows
    eq_lowpass_hz: tuple = (3400.0, 7800.0)  # telephone-ish to full band
    reverb_prob: float = 0.5
    rt60_s: tuple = (0.15, 0.7)
    reverb_wet: tuple = (0.05, 0.35)
    noise_db: tuple = (-70.0, -40.0)  # mic self-noise, dBFS RMS


def augment(utt: Utterance, rng, cfg: AugmentConfig = AugmentConfig(), room_rng=None) -> Utterance:
    """Speed, EQ, reverb (from room_rng: one person keeps one voice, mic and room), then level and
    mic noise (from rng: vary per utterance)."""
    room = rng if room_rng is None else room_rng
    speed = room.uniform(*cfg.speed)
    use_eq = room.random() < cfg.eq_prob
    hp, lp = room.uniform(*cfg.eq_highpass_hz), room.uniform(*cfg.eq_lowpass_hz)
    use_rev = room.random() < cfg.reverb_prob
    rt60, wet = room.uniform(*cfg.rt60_s), room.uniform(*cfg.reverb_wet)
    audio = resample(utt.audio, int(round(SR * speed)), SR) if abs(speed - 1) > 1e-3 else utt.audio.copy()
    scale = 1.0 / speed
    phones = [(s * scale, e * scale, p) for s, e, p in utt.phones]
    words = [(s * scale, e * scale, w) for s, e, w in utt.words]
    if use_eq:
        sos = np.vstack([butter(2, hp, "highpass", fs=SR, output="sos"),
                         butter(4, min(lp, SR / 2 - 200), "lowpass", fs=SR, output="sos")])
        audio = sosfilt(sos, audio).astype(np.float32)
    if use_rev:
        audio = add_reverb(audio, rt60, wet, room)
    rms = float(np.sqrt(np.mean(audio ** 2))) + 1e-9
    audio = audio * (10 ** ((cfg.rms_dbfs + rng.uniform(*cfg.level_db)) / 20) / rms)
    hiss = 10 ** (rng.uniform(*cfg.noise_db) / 20)
    audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * hiss
    return Utterance(audio.astype(np.float32), phones, utt.voice, utt.text, words)


def add_reverb(audio, rt60, wet, rng):
    """Exponentially decaying noise tail; the direct path stays at lag 0 so timings hold."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[: int(0.003 * SR)] = 0  # early reflections come a few ms after the direct sound
    ir = ir / (np.sqrt(np.sum(ir ** 2)) + 1e-9)
    tail = fftconvolve(audio, ir)[: len(audio)]
    return ((1 - wet) * audio + wet * tail).astype(np.float32)


def _align_summary(path):
    """Worker: one utterance's (duration in s, alignment record or None)."""
    audio, rec = _alignment(Path(path))
    return len(audio) / SR, rec


def main(argv=None):
    """python -m training.voices: align every shared LibriSpeech utterance (cached) and
    report the success rate; --tts also smoke-tests every TTS voice."""
    import argparse
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--tts", action="store_true")
    ap.add_argument("--jobs", type=int, default=1, help="utterances aligned at once (one core each)")
    ap.add_argument("--write-store", action="store_true", help=f"then write {ALIGN_STORE.name} (committed) "
                    "from the alignments")
    args = ap.parse_args(argv)
    if args.tts:
        for v in tts_voices():
            if engine_available(v.engine):
                u = synthesize(v, "Hello there, how are you doing today?")
                print(f"{v.id}: {u.duration:.2f} s, {len(u.phones)} phones", flush=True)
            else:
                print(f"{v.id}: engine not installed", flush=True)
    files = [f for fs in librispeech_files().values() for f in fs]
    t0, ok, audio_s = time.time(), 0, 0.0
    methods, records = {}, {}
    # pocketsphinx decodes on one core and each utterance is independent (its own cache file), so
    # --jobs workers divide the 24-36 single-core minutes of a fresh machine between them.
    if args.jobs > 1:
        pool = multiprocessing.get_context("spawn").Pool(args.jobs)
        results = pool.imap(_align_summary, files)
    else:
        pool, results = None, map(_align_summary, files)
    for k, (f, (dur, rec)) in enumerate(zip(files, results)):
        if rec is not None:
            records[f] = rec
        if rec is not None and rec["ok"]:
            ok += 1
            audio_s += dur
            m = rec.get("method", "align")
            methods[m] = methods.get(m, 0) + 1
        if (k + 1) % 25 == 0:
            print(f"{k + 1}/{len(files)} aligned, {ok} ok, {time.time() - t0:.0f} s", flush=True)
    if pool is not None:
        pool.close()
        pool.join()
    if args.write_store:
        if len(records) < len(files):
            raise SystemExit(f"--write-store: {len(files) - len(records)} utterances could not be aligned "
                             "(pocketsphinx not installed); the store was left as it was")
        write_align_store(records)
        print(f"wrote {ALIGN_STORE} ({ALIGN_STORE.stat().st_size / 1e6:.2f} MB)", flush=True)
    speakers = {f.name.split("-")[0] for f in files}
    print(f"{ok}/{len(files)} utterances aligned ({100 * ok / max(1, len(files)):.1f}%), "
          f"{audio_s / 3600:.2f} h, {len(speakers)} speakers, methods {methods}, {time.time() - t0:.0f} s",
          flush=True)


if __name__ == "__main__":
    main()
