"""`make bench`: speed and memory of the runtime, measured in one run, printed as a table.

Each measurement runs in its own process (a warm model, as `serve` keeps it), so peak memory
is that process's own. Targets: ONNX on 2 CPU cores >= 200x real time on a 10-minute
conversation; peak memory <= 1 GB (1,000 MB) for any length up to 3 hours, whatever the input
format (1 h and 3 h of 16 kHz mono, 1 h of 48 kHz stereo); torch on an H200 >= 5,000x; a cast of
four 10-minute voices (ONNX, CPU) in under 4x the time of one 10-minute conversation.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from .paths import runtime_pythonpath
from .request import CastRequest, PredictRequest

DURATIONS = (10, 60, 600)
MEMORY_CASES = "3600:16000:1,10800:16000:1,3600:48000:2"  # seconds:rate:channels, ONNX on CPU only
CPU_TARGET_RTF, GPU_TARGET_RTF, MEMORY_TARGET_MB = 200.0, 5000.0, 1000.0
CAST_CASE = "4:600"  # members:seconds, ONNX on CPU
CAST_TARGET_RATIO = 4.0  # the cast's wall time over one conversation's of the same length
CAST_REPEATS = 2  # cast and single runs, alternated; the best of each is compared


def _tile(seed, sr=16000):
    """10 s of speech-shaped audio (voiced, syllable-modulated, with pauses)."""
    rng = np.random.default_rng(seed)
    t = np.arange(10 * sr) / sr
    f0 = 120 + 80 * rng.random()
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.2 * t + seed) > 0)
    return (0.2 * voice * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def conversation(seconds, seed):
    """Speech-shaped 16 kHz audio built from a 10 s tile."""
    return np.tile(_tile(seed), int(np.ceil(seconds / 10)))[:int(seconds * 16000)]


def write_voice(path, seconds, seed, sr=16000, channels=1, reverse=False):
    """A 16-bit voice file of any length, written a tile at a time (the benchmark's own memory stays
    small); a second channel is the same voice a little quieter and later, as a second microphone."""
    tile = _tile(seed, sr)[::-1] if reverse else _tile(seed, sr)
    if channels > 1:
        tile = np.stack([tile] + [0.8 * np.roll(tile, 13 * c) for c in range(1, channels)], axis=1)
    n = int(seconds * sr)
    with sf.SoundFile(path, "w", sr, channels, "PCM_16") as f:
        for a in range(0, n, len(tile)):
            f.write(tile[:n - a])


def write_cast(folder, members, seconds, seed=0, sr=16000):
    """`members` voice files of a seeded turn-taking conversation (turns of 1.5-8 s, pauses of
    0.2-0.8 s, one person at a time): each microphone holds its own voice in its turns and the others
    faintly. Written 10 s at a time. Returns the paths."""
    rng = np.random.default_rng(seed)
    turns, t, who = [], 0.0, 0
    while t < seconds:
        d = rng.uniform(1.5, 8.0)
        turns.append((who, t, t + d))
        t += d + rng.uniform(0.2, 0.8)
        who = (who + 1 + int(rng.integers(members - 1))) % members
    tiles = [_tile(10 + k, sr) for k in range(members)]
    n, block = int(seconds * sr), len(tiles[0])
    paths = [Path(folder) / f"m{k}.wav" for k in range(members)]
    files = [sf.SoundFile(p, "w", sr, 1, "PCM_16") for p in paths]
    try:
        for a in range(0, n, block):
            b = min(n, a + block)
            times = np.arange(a, b) / sr
            dry = []
            for k in range(members):
                gate = np.zeros(b - a, np.float32)
                for w, t0, t1 in turns:
                    if w == k and t0 < times[-1] and t1 > times[0]:
                        gate[(times >= t0) & (times < t1)] = 1.0
                dry.append(tiles[k][:b - a] * gate)
            dry = np.array(dry)
            for k, f in enumerate(files):
                f.write(dry[k] + 0.05 * (dry.sum(0) - dry[k]))
    finally:
        for f in files:
            f.close()
    return paths


def child(args):
    """One measurement: load, warm up, time one job end to end (files in, files out)."""
    from .backends import load_backend
    from .cast import run_cast
    from .inference import Predictor
    from .predict import run_predict

    t0 = time.perf_counter()
    backend = load_backend(args.model, args.backend, args.device)
    pred = Predictor(backend)
    load_s = time.perf_counter() - t0
    run_predict(pred, PredictRequest(args.warm, args.out))  # first-call costs are not throughput
    t0 = time.perf_counter()
    if args.cast_voices:
        folder = os.path.dirname(args.out)
        members = [{"name": Path(v).stem, "voice": v, "out": os.path.join(folder, f"{Path(v).stem}.npz")}
                   for v in args.cast_voices.split(",")]
        done = run_cast(pred, CastRequest(members=members))
    else:
        done = run_predict(pred, PredictRequest(args.self_audio, args.out, partner=args.partner))
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB -> MB: 1 GB = 1000 MB
    print(json.dumps({"wall": wall, "load": load_s, "peak_mb": peak_mb, "device": backend.device,
                      "provider": backend.provider, "frames": done["frames"], "gpu": backend.describe()["gpu"]}))


def measure(model, backend, device, a, b, warm, out, cast_voices=()):
    job = ["--cast-voices", ",".join(map(str, cast_voices))] if cast_voices else ["--self", str(a), "--partner", str(b)]
    r = subprocess.run([sys.executable, "-m", "model_runtime.bench", "--child", "--model", str(model),
                        "--backend", backend, "--device", device, *job,
                        "--warm", str(warm), "--out", str(out)], capture_output=True, text=True,
                       env=runtime_pythonpath())
    if r.returncode != 0:
        raise RuntimeError(f"bench child failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def model_for_bench(tmp):
    """The shipped model if there is one; else random weights of the shipped size (speed only)."""
    from .model_file import SHIPPED_MODEL

    if SHIPPED_MODEL.exists() and SHIPPED_MODEL.with_suffix(".pt").exists():
        return SHIPPED_MODEL, "shipped model"
    pt, onnx = Path(tmp) / "bench.pt", Path(tmp) / "bench.onnx"
    for cmd in (["init", "--out", pt], ["export", "--checkpoint", pt, "--out", onnx]):
        subprocess.run([sys.executable, "-m", "model_runtime", *map(str, cmd)], check=True,
                       capture_output=True, env=runtime_pythonpath())
    return onnx, "random weights of the shipped size (no trained model shipped yet; speed is the same)"


def _format(rate, channels):
    return f"{rate / 1000:g} kHz {'mono' if channels == 1 else 'stereo' if channels == 2 else f'{channels} ch'}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--model"), ap.add_argument("--backend"), ap.add_argument("--device", default="cpu")
    ap.add_argument("--self", dest="self_audio"), ap.add_argument("--partner")
    ap.add_argument("--warm"), ap.add_argument("--out")
    ap.add_argument("--durations", default=",".join(map(str, DURATIONS)))
    ap.add_argument("--memory", default=MEMORY_CASES, help="memory cases, seconds:rate:channels,...")
    ap.add_argument("--cast", default=CAST_CASE, help="the cast case, members:seconds ('' to skip)")
    ap.add_argument("--cast-voices", default="")
    args = ap.parse_args()
    if args.child:
        return child(args)

    durations = [float(d) for d in args.durations.split(",") if d]
    memory = [tuple(float(v) for v in case.split(":")) for case in args.memory.split(",") if case]
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    with tempfile.TemporaryDirectory(prefix="duet-bench-") as tmp:
        model, what = model_for_bench(tmp)
        print(f"Duet runtime benchmark — model: {what}; CPU cores: {os.cpu_count()}")
        warm = Path(tmp) / "warm.wav"
        sf.write(warm, conversation(5, 0), 16000)
        runs = [("onnx", "cpu"), ("torch", "cpu")] + ([("torch", "cuda")] if gpu else [])
        cases = [(d, 16000, 1, runs, False) for d in durations]
        cases += [(d, int(rate), int(ch), [("onnx", "cpu")], True) for d, rate, ch in memory]
        rows = []
        for seconds, rate, channels, todo, for_memory in cases:
            a, b = Path(tmp) / "a.wav", Path(tmp) / "b.wav"
            write_voice(a, seconds, 1, rate, channels)
            write_voice(b, seconds, 2, rate, channels, reverse=True)
            for backend, device in todo:
                m = measure(model, backend, device, a, b, warm, Path(tmp) / "out.npz")
                rows.append((seconds, rate, channels, backend, for_memory, m))
                print(f"  {seconds:7g} s  {backend:5s} {m['device']:4s}  wall {m['wall']:7.3f} s  "
                      f"{seconds / m['wall']:9.1f}x real time  peak {m['peak_mb']:7.0f} MB  "
                      f"(model load {m['load']:.2f} s)"
                      f"{'  ' + _format(rate, channels) if for_memory else ''}", flush=True)
            a.unlink(), b.unlink()
        cast_row = None
        if args.cast:
            members, seconds = int(args.cast.split(":")[0]), float(args.cast.split(":")[1])
            singles = [m for d, r, c, be, mem, m in rows if be == "onnx" and d == seconds and not mem]
            a, b = Path(tmp) / "a.wav", Path(tmp) / "b.wav"
            write_voice(a, seconds, 1), write_voice(b, seconds, 2, reverse=True)
            folder = Path(tmp) / "cast"
            folder.mkdir()
            voices = write_cast(folder, members, seconds)
            casts = []
            # Cast and single conversation alternate and the best of each counts: on a machine
            # others share, a ratio of two single runs minutes apart measures their load, not Duet.
            for _ in range(CAST_REPEATS):
                casts.append(measure(model, "onnx", "cpu", None, None, warm, folder / "out.npz", voices))
                singles.append(measure(model, "onnx", "cpu", a, b, warm, Path(tmp) / "out.npz"))
            a.unlink(), b.unlink()
            m, single = min(casts, key=lambda x: x["wall"]), min(singles, key=lambda x: x["wall"])
            cast_row = (members, seconds, m, single)
            print(f"  cast {members} x {seconds:g} s  onnx {m['device']:4s}  wall {m['wall']:7.3f} s  "
                  f"{m['wall'] / single['wall']:9.2f}x one {seconds:g} s conversation ({single['wall']:.3f} s; "
                  f"best of {len(casts)} and {len(singles)})  peak {m['peak_mb']:7.0f} MB", flush=True)
    print()
    print("Targets (ratios measured in this run):")
    for seconds, rate, channels, backend, for_memory, m in rows:
        rtf = seconds / m["wall"]
        if backend == "onnx" and seconds == 600 and not for_memory:
            print(f"  ONNX CPU, 10-min conversation: {rtf:.0f}x real time / target {CPU_TARGET_RTF:.0f}x "
                  f"= {rtf / CPU_TARGET_RTF:.2f}  {'PASS' if rtf >= CPU_TARGET_RTF else 'MISS'}")
        if for_memory:
            print(f"  ONNX CPU, {seconds / 60:.0f}-min conversation, {_format(rate, channels)}: peak "
                  f"{m['peak_mb']:.0f} MB / target {MEMORY_TARGET_MB:.0f} MB = {m['peak_mb'] / MEMORY_TARGET_MB:.2f}  "
                  f"{'PASS' if m['peak_mb'] <= MEMORY_TARGET_MB else 'FAIL'}")
        if m["device"] == "cuda" and durations and seconds == max(durations) and not for_memory:
            print(f"  torch GPU ({m['gpu']}): {rtf:.0f}x real time / target {GPU_TARGET_RTF:.0f}x = "
                  f"{rtf / GPU_TARGET_RTF:.2f}  {'PASS' if rtf >= GPU_TARGET_RTF else 'MISS'}")
    if cast_row is not None:
        members, seconds, m, single = cast_row
        ratio = m["wall"] / single["wall"]
        print(f"  ONNX CPU, cast of {members} x {seconds / 60:g} min: {ratio:.2f}x one {seconds / 60:g}-min "
              f"conversation / target {CAST_TARGET_RATIO:g}x = {ratio / CAST_TARGET_RATIO:.2f}  "
              f"{'PASS' if ratio < CAST_TARGET_RATIO else 'FAIL'}")
    if not gpu:
        print("  GPU: no CUDA device on this machine; GPU rows are added where one is present.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
