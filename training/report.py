"""Honest evaluation of a trained model on held-out conversations, and the model card.

The model is run exactly as it ships: its ONNX file through the runtime's windowed Predictor.
Compared against (on the same test conversations, test voices never seen in training):
  - speaker-only ablation: the same network given no partner audio and no partner face;
  - energy baseline: jawOpen from the own track's loudness, every other channel at rest
    (metrics.energy_baseline);
  - the targets themselves (the procedural animator), for their own statistics.
"""

import time
from collections import Counter

import numpy as np

from model_runtime.audio import Track
from model_runtime.backends import OnnxBackend
from model_runtime.inference import Predictor
from model_runtime.motion_io import Motion

from .conversation import generate
from .metrics import energy_baseline, evaluate_conversations

ROLE_FPS = 25.0

COLUMNS = [  # (metric key, header, better)
    ("fd_mouth_jaw_speak", "FD mouth+jaw (speaking)", "lower"),
    ("fd_eyes_brows_all", "FD eyes+brows", "lower"),
    ("fd_head_all", "FD head", "lower"),
    ("mse_mouth_jaw_all", "MSE mouth+jaw", "lower"),
    ("lipsync", "lip sync r(jawOpen)", "higher"),
    ("sid_mouth_jaw_listen", "SID expr. (listening)", "higher"),
    ("sid_head_listen", "SID head (listening)", "higher"),
    ("rpcc_mouth_jaw", "rPCC mouth+jaw", "lower"),
    ("rpcc_head", "rPCC head", "lower"),
    ("leakage", "leakage", "lower"),
    ("blink_rate", "blinks/min", "~26"),
]


def fit_frames(pred, n):
    """pred cut or padded (last frame held) to n frames."""
    return pred[:n] if len(pred) >= n else np.concatenate([pred, np.repeat(pred[-1:], n - len(pred), 0)])


def shipped_predict(predictor, speaker_only=False, face_known=True, liveliness=True):
    """predict(own, partner, partner_motion, n) running the model as shipped: the runtime's
    windowed Predictor with its liveliness layer, unless switched off."""
    def predict(own, partner, partner_targets, n):
        motion = Motion(partner_targets, ROLE_FPS) if face_known and not speaker_only else None
        res = predictor.predict(Track(own.copy(), "own"),
                                None if speaker_only else Track(partner.copy(), "partner"),
                                motion, ROLE_FPS, liveliness=liveliness)
        return fit_frames(res.weights, n)
    return predict


def evaluate_model(onnx_path, tcfg, log=print):
    t0 = time.time()
    predictor = Predictor(OnnxBackend(onnx_path, "cpu"))
    test = [generate("test", i, tcfg.seed, tcfg.conversation) for i in range(tcfg.test_conversations)]
    variants = {
        "full": shipped_predict(predictor),
        "full, network only (no liveliness layer)": shipped_predict(predictor, liveliness=False),
        "full, partner face unknown": shipped_predict(predictor, face_known=False),
        "speaker-only ablation": shipped_predict(predictor, speaker_only=True),
        "energy baseline": lambda own, partner, ptgt, n: energy_baseline(own, n, ROLE_FPS),
        "targets (animator)": None,
    }
    table = {}
    for name, predict in variants.items():
        if predict is None:  # the targets scored against themselves: their own statistics
            predict = _targets_of(test)
        table[name] = evaluate_conversations(test, predict, tcfg.seed)
    log(f"evaluated {len(test)} test conversations in {time.time() - t0:.0f} s")
    return table, test


def _targets_of(convs):
    by_audio = {}
    for c in convs:
        by_audio[id(c.audio_a)], by_audio[id(c.audio_b)] = c.targets_a, c.targets_b
    return lambda own, partner, ptgt, n: by_audio[id(own)]


def checks(table):
    full, abl, base = table["full"], table["speaker-only ablation"], table["energy baseline"]
    out = []
    for key, label, better in (("sid_mouth_jaw_listen", "listening SID (expression)", "higher"),
                               ("leakage", "leakage", "lower"), ("rpcc_mouth_jaw", "rPCC (mouth+jaw)", "lower"),
                               ("rpcc_head", "rPCC (head)", "lower")):
        ok = full[key] > abl[key] if better == "higher" else full[key] < abl[key]
        out.append((f"full vs speaker-only ablation, {label} ({better} is better)", full[key], abl[key], ok))
    out.append(("full vs energy baseline, lip sync r(jawOpen) (higher is better)", full["lipsync"],
                base["lipsync"], full["lipsync"] > base["lipsync"]))
    return out


def data_summary(tcfg, test):
    """What the model was trained on, and the voices of the `test` conversations it was scored on."""
    voices, real, seconds = Counter(), set(), 0.0
    for i in range(tcfg.train_conversations):
        meta = generate("train", i, tcfg.seed, tcfg.conversation).meta
        seconds += meta["duration_s"]
        for v, is_real in zip(meta["voices"], meta["real"]):
            (real.add(v) if is_real else voices.update([v]))
    test_voices = Counter()
    for c in test:
        test_voices.update(c.meta["voices"])
    return {"hours": seconds / 3600, "tts_voices": sorted(voices), "real_speakers": len(real),
            "test_voices": sorted(test_voices), "conversations": tcfg.train_conversations}


def fidelity_lines(rep):
    """The card's real-speech section from a training.fidelity report (None: not measured)."""
    from .fidelity import format_report

    if rep is None:
        return []
    return ["## Real speech: held-out LibriSpeech speakers", "",
            "Both sides of each conversation are real speakers never used in training, through the same "
            "microphones, bleed and noise as the training conversations. The reference is the animator run on "
            "their pocketsphinx alignment (what the network was trained to imitate); the network runs as an "
            "artist runs it (conversation mode: A alone, B given A, A given B; liveliness on). Spread = network "
            "std / animator std over speaking frames; the recording rows rescale both tracks to a peak level or "
            "pass them through a phone band, an MP3 codec, a room or DC with hum (`python -m training.fidelity`).",
            "", format_report(rep), ""]


def facegood_lines(rep, tcfg):
    """The card's FACEGOOD section from a training.facegood report (None: not measured)."""
    from .facegood import format_report

    if rep is None:
        return []
    used = (f"The other takes were {tcfg.facegood_fraction:.0%} of the training windows, supervising only the "
            "mouth channels the rig drives (a masked loss)." if tcfg.facegood_fraction > 0
            else "No FACEGOOD take was used in training.")
    return ["## Real mouth: FACEGOOD (held out)", "",
            "FACEGOOD Audio2Face's recording (MIT; one speaker reading Chinese, her mouth animated by an artist "
            "from video of the same session), mapped to ARKit by FACEGOOD's own table (`training/facegood.py`). "
            f"{used} The network as shipped (no partner, liveliness off) against the real mouth over the frames "
            "where she speaks (`python -m training.facegood`). It checks mouth shapes on real, non-English "
            "speech, not English lip sync or listening.", "", format_report(rep), ""]


def _sampling_lines(fidelity):
    """What is sampled and what is predicted, with the two-seed numbers when measured."""
    seeds = (fidelity or {}).get("seeds")
    numbers = (f" On held-out real speech in conversation mode two seeds' heads correlate at r {seeds['head_r']:.2f} "
               f"(speaking spread {seeds['head_speak'][0]:.3f} and {seeds['head_speak'][1]:.3f} rad); the "
               f"blendshapes differ by {seeds['weights_mean_diff']:.3f} on average (largest "
               f"{seeds['weights_max_diff']:.2f}), because each character reacts to the other's head, which the "
               "seed changes." if seeds else "")
    return ["## What is predicted and what is sampled", "",
            "- Predicted from the voices (and the partner's face): every blendshape, and the head's mean path "
            "mu: nods at the partner's phrase ends, beats on accents, turn-start lifts, posture mirroring. "
            "Given the same partner face, the same audio gives the same blendshapes for any seed.",
            "- Sampled from the seed: the head's slow sway. The network outputs head = mu + sigma · z, where z is "
            "band-limited noise (0.1–0.8 Hz, three axes, unit size; `model_runtime/head_sway.py`) drawn from the "
            "job's seed and sigma is predicted from the voice (large while speaking loudly, small while "
            "listening). The training animator drew its sway from the same generator and the network was given "
            "that noise, so it learned sigma exactly instead of averaging the sway away. Blinks and gaze "
            f"shifts come from the runtime's seeded liveliness layer.{numbers}", ""]


def write_card(path, table, summary, train_info, tcfg, onnx_path, fidelity=None, facegood=None):
    import os

    def fmt(v):
        return "—" if v != v else f"{v + 0.0:.3f}".replace("-0.000", "0.000")

    lines = ["# Duet model card — `duet_dualtalk`", "",
             "**What it is:** a small DualTalk-style network (joint encoder, cross-modal temporal enhancer, "
             "interaction module, expressive synthesis; attention with a time-distance bias; log-mel audio "
             "encoders) trained from scratch **by this project on synthetic conversations**"
             + (" (and, for the mouth channels only, minutes of one real speaker's artist-solved mouth)"
                if tcfg.facegood_fraction > 0 else "")
             + ". It is not the DualTalk paper's model or weights, and it has never seen a real human "
             "conversation with ground-truth facial capture.", "",
             f"- File: `{os.path.basename(onnx_path)}` ({os.path.getsize(onnx_path) / 1e6:.1f} MB), its torch "
             "checkpoint beside it. Output: 52 ARKit weights + head yaw/pitch/roll (radians), 25 fps inside, "
             "resampled to any fps.",
             "- Reproduce: `make train` (one command; seeded, deterministic data).", "",
             "## Training data", "",
             f"- {summary['conversations']} two-person conversations, {summary['hours']:.2f} h of audio per track, "
             "built by `training/conversation.py`: turns with pauses, overlaps and interruptions, "
             "backchannels, crosstalk bleed between microphones, background noise, gain differences.",
             f"- Voices: {summary['real_speakers']} real LibriSpeech speakers (CC-BY-4.0, phoneme timings from "
             f"pocketsphinx alignment) and {len(summary['tts_voices'])} offline TTS voices "
             f"({', '.join(summary['tts_voices'])}).",
             f"- Held-out test voices (never in training): {', '.join(summary['test_voices'])}.",
             "- Targets: `training/animator.py`, a procedural animator (visemes with coarticulation, "
             "jaw from vowel openness, prosody-driven head and brows, blinks, listening nods/smiles/gaze, a "
             "listener echoing the partner's smile and brows and mirroring the partner's slow head posture). "
             "The model learns this animator's style: it is the ceiling of what it can do.", "",
             "## Training", "",
             f"- {train_info.get('steps', '?')} steps ({train_info.get('epochs', '?')} epochs) in "
             f"{train_info.get('minutes', '?')} min on {train_info.get('device', '?')}, stopped by "
             f"{train_info.get('stop', '?')}; batch {tcfg.batch_size} × 8 s windows, AdamW lr {tcfg.lr}, "
             "cosine schedule; loss = per-group MSE (mouth+jaw, eyes+brows, head) + velocity MSE (DualTalk), "
             f"with the expression groups' listening frames weighted {tcfg.listen_weight}×; each lip channel's "
             f"error scaled up to jaw std / its std (at most {tcfg.channel_boost}×); the closure channels' error at "
             f"P/B/M frames weighted {tcfg.bilabial_weight}×; a spread loss (weight {tcfg.spread_weight}: the "
             "squared difference between the network's and the target's std of each mouth channel over each "
             "window, so a muted mouth costs like a wrong one); "
             + (f"a head spread loss (weight {tcfg.head_spread_weight}: the same for yaw, pitch and roll over each "
                "window's speaking frames and its listening frames apart, reaching only the head's output layers); "
                if tcfg.head_spread_weight > 0 else "")
             + "a phone-classification loss on the own-voice "
             f"features (weight {tcfg.phone_weight}, a training-only probe against the alignments).",
             f"- Device: {_device_line(train_info.get('device'))}",
             f"- Recordings: each track's log-mel normalised to its own speech level; training windows recorded "
             f"{0.0 - max(tcfg.gain_db):.0f}–{0.0 - min(tcfg.gain_db):.0f} dB quieter as 16-bit audio, through a "
             f"random room ({tcfg.room_prob:.0%} of tracks), with mains hum and DC ({tcfg.mains_prob:.0%}) and "
             f"through a random narrow band ({tcfg.band_prob:.0%}: bass cut 50–400 Hz, treble cut 3–7.5 kHz, as a "
             "phone line, a codec or a small microphone would)"
             + (f"; each track's formants moved by a random factor {tcfg.vtlp[0]}–{tcfg.vtlp[1]} (vocal-tract-length "
                "perturbation)." if tuple(tcfg.vtlp) != (1.0, 1.0) else "."),
             f"- Real mouths: {tcfg.facegood_fraction:.0%} of windows are FACEGOOD takes (below), mouth channels "
             "only." if tcfg.facegood_fraction > 0 else "- No real mouth capture used in training.",
             "- Partner face dropped in 30 % of windows (and a span in 20 %), partner audio in 10 %, so the same "
             "model serves \"partner face unknown\" and \"no partner track\".", "",
             f"## Scores on {tcfg.test_conversations} held-out test conversations (both characters each)", "",
             "| model | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS),
             "| better is | " + " | ".join(b for _, _, b in COLUMNS) + " |"]
    for name, m in table.items():
        lines.append(f"| {name} | " + " | ".join(fmt(m.get(k, float('nan'))) for k, _, _ in COLUMNS) + " |")
    lines += ["", "Every model row runs the shipped ONNX file through the runtime (windows, cross-fade) with the "
              "runtime's liveliness layer (seeded blinks, gaze shifts, idle head sway) on, as `predict` does by "
              "default; the \"network only\" row switches that layer off. The speaker-only ablation is the same "
              "network run without partner audio and partner face (it was trained with such drops), not a "
              "separately trained model. FD and MSE compare against the animator's targets; SID uses k-means "
              "centres fitted on the targets' listening frames.", "",
              "## Required comparisons", ""]
    comparisons = checks(table)
    for label, a, b, ok in comparisons:
        lines.append(f"- {label}: {fmt(a)} vs {fmt(b)} — **{'met' if ok else 'NOT met'}**")
    lines += ["", "## Known limits", "",
              "- Trained only on synthetic conversations: read speech and TTS, not spontaneous talk; laughter, "
              "emotion and non-English speech are outside what it has seen.",
              "- Its listening behaviour is the procedural animator's (nods, smiles, blinks, gaze), learned "
              "statistically; it will not invent behaviour the animator never made.",
              "- Tongue, cheek puff and nose sneer are rarely driven by the targets and stay near rest.",
              "- Eye gaze is expressed through the eyeLook* blendshapes only; no eye rotation channels.",
              *_head_notes(table, comparisons, fmt), "", *_sampling_lines(fidelity), *fidelity_lines(fidelity),
              *facegood_lines(facegood, tcfg)]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))


def _device_line(device):
    """Where the card's model was trained, and why there when it was the CPU."""
    if device == "cuda":
        return "a CUDA GPU."
    return (f"{device or '?'}. `make train` uses a CUDA GPU when the machine running it has one; this model was "
            "trained on the project's 2-core development machine, which has none (the step budget above is "
            "sized for it). The GPU machines the project can borrow take a working tree of at most 64 MiB for "
            "15 minutes a session, and the cached training conversations are about 1.9 GB.")


def _head_notes(table, comparisons, fmt):
    """The card's lines on head motion: what the targets do, and whether the network learned it."""
    mirroring = ("- Head motion while listening is mostly the animator's posture mirroring: the listener follows "
                 "the partner's slow head drift 0.2–0.45 s later, so the targets' heads correlate with the "
                 "partner's (Pearson ≈ 0.45 over a conversation). Real listeners mirror less, and less reliably.")
    if next(ok for label, _, _, ok in comparisons if "rPCC (head)" in label):
        return [mirroring + " With a partner face given, expect the model to follow it more closely than a "
                "person would (lower the head intensity, or leave the partner face out, if that reads as copying)."]
    net_only = table.get("full, network only (no liveliness layer)", {})
    return [mirroring,
            "- The network has not learned the targets' head motion: without the liveliness layer its "
            f"listening head is nearly still (SID head {fmt(net_only.get('sid_head_listen', float('nan')))} vs "
            f"the targets' {fmt(table['targets (animator)']['sid_head_listen'])} bits) and it does not follow "
            f"the partner's head (rPCC head {fmt(table['full']['rpcc_head'])}, no better than without partner "
            "inputs). The head the artist sees is mostly the runtime's idle sway and the network's small "
            "speaking motion."]


def evaluate_and_write_card(onnx_path, tcfg, card_path, log=print):
    import onnx

    from model_runtime.model_file import parse_onnx_metadata

    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    info = parse_onnx_metadata(props, onnx_path)["info"]
    table, test = evaluate_model(onnx_path, tcfg, log)
    fidelity = None
    if tcfg.fidelity_conversations:
        from .fidelity import evaluate

        fidelity = evaluate(onnx_path, tcfg.fidelity_conversations, tcfg.seed, log=log)
    facegood_rep = None
    if tcfg.facegood_check:
        from . import facegood

        if facegood.available():
            facegood_rep = facegood.evaluate(onnx_path)
        else:
            log(f"FACEGOOD data not found at {facegood.DATA}: the card has no real-mouth check")
    write_card(card_path, table, data_summary(tcfg, test), info, tcfg, onnx_path, fidelity, facegood_rep)
    for row in checks(table):
        log(f"{'met' if row[3] else 'NOT met'}: {row[0]}: {row[1]:.3f} vs {row[2]:.3f}")
    return table
