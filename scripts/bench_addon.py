"""Add-on benchmarks: keyframe writing and Generate with a warm runtime.

    python scripts/bench_addon.py [--model M.onnx]   (default: a random-weights model made here)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def speechlike(seconds, sr=16000, seed=0, f0=140.0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    syl = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None)
    return (0.2 * voice * syl + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def face(bpy, arkit):
    mesh = bpy.data.meshes.new("Face")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("Face", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for n in arkit:
        obj.shape_key_add(name=n)
    return obj


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    args = ap.parse_args()
    import bpy
    import duet_load
    import soundfile as sf

    bpy.ops.wm.read_factory_settings(use_empty=True)
    duet_load.enable()
    from duet.addon import generate, runtime
    from duet.addon.job import JobState
    from duet.addon.writer import Transaction, WriteOptions, write_character
    from duet.model_runtime.channels import ARKIT_NAMES, CHANNELS
    from duet.model_runtime.paths import runtime_pythonpath

    scene = bpy.context.scene
    scene.render.fps = 30
    obj = face(bpy, ARKIT_NAMES)
    w = np.random.default_rng(0).uniform(0, 1, (18000, len(CHANNELS))).astype(np.float32)
    t0 = time.perf_counter()
    with Transaction() as tx:
        write_character(scene, obj, list(CHANNELS), w, WriteOptions(head_target="OBJECT"), tx)
    print(f"keyframe write: 18000 frames x 55 channels in {time.perf_counter() - t0:.3f} s")

    tmp = tempfile.mkdtemp(prefix="duet-bench-")
    model = args.model
    python, why = runtime.find_python("")
    if python is None:
        sys.exit(why)
    if not model:
        env = runtime_pythonpath()
        pt, model = os.path.join(tmp, "r.pt"), os.path.join(tmp, "r.onnx")
        for a in (["init", "--out", pt], ["export", "--checkpoint", pt, "--out", model]):
            subprocess.run([python, "-m", "model_runtime", *a], check=True, env=env, cwd=duet_load.REPO,
                           capture_output=True)
    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.model_path, prefs.device = model, "CPU"
    for name, seed, f0 in (("a", 1, 140.0), ("b", 2, 210.0)):
        sf.write(os.path.join(tmp, f"{name}.wav"), speechlike(30.0, seed=seed, f0=f0), 16000)
    s = scene.duet
    s.character, s.add_sound_strips = obj, False
    s.self_audio, s.partner_audio = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
    for label in ("cold (runtime starts)", "warm"):
        t0 = time.perf_counter()
        job = generate.start(bpy.context, wait=True)
        assert job.state is JobState.DONE, job.message
        print(f"Generate, 30 s conversation, {label}: keys in {time.perf_counter() - t0:.2f} s")
    generate.stop_all()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
