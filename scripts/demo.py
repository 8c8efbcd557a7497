"""`make demo`: two demo heads in conversation, animated through the real extension and runtime.

    python scripts/demo.py [--self A.wav --partner B.wav | --cast 3] [--seconds S] [--preview-fps 25]
        [--resolution 480x270] [--out-dir out] [--model M] [--device auto|gpu|cpu]

With no voices it animates the shipped sample conversation (assets/sample: Alex speaks a.wav,
Sam speaks b.wav) in conversation mode; with --self/--partner, Alex speaks SELF and Sam speaks
PARTNER. It writes, into --out-dir:

    demo.blend         the scene: both heads keyed (shape keys + head rotation), sound strips
    demo.glb, .fbx     both heads with their animation (addon/export.py), each re-imported and checked
    demo.mp4           a Workbench preview with both voices mixed in (Blender's own FFmpeg: H.264 + AAC)
    demo.png           contact sheet: moments where each one speaks, time-stamped
    demo_curves.png    jaw / mouth / blink / head curves read back from demo.blend, speech shaded
    audio/             the voices the .blend plays (copies, trimmed to --seconds)

--cast N seats N demo heads (Alex, Sam, Kim) around a table, fills the panel's Cast list and runs
Generate cast on the shipped N-person sample (3: assets/sample_cast, 2: assets/sample): every head
speaks its own track and turns, with its eyes, toward whoever speaks. The same outputs, named
demo_cast.blend, .glb, .fbx, .mp4, .png, _curves.png (default preview size 640x360).

This file is the sequence of steps; each job has its module beside it: demo_voices.py (input),
demo_scene.py (heads, generation, exports), demo_render.py (frames, demo.mp4 and its check),
demo_pictures.py (contact sheet, curves), demo_common.py (cast, errors, progress).

Runs with the PyPI bpy module in the repository's .venv (`make setup`: it also needs soundfile,
scipy, matplotlib and av, which Blender's own Python lacks); tested with bpy 4.2, 4.5 and 5.0.
Exit codes: 0 done, 2 bad input (one line on stderr), 1 anything else (a failed check included).
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # the demo's modules, then the repository

from demo_common import CAST_SIZES, FPS, BadInputError, DemoError, Steps, blender_output_to, say  # noqa: E402

from model_runtime.paths import ROOT  # noqa: E402

OUTPUTS = (".blend", ".glb", ".fbx", ".mp4", ".png", "_curves.png")  # demo<suffix> (demo_cast<suffix>) in --out-dir
SIZES = {False: "480x270", True: "640x360"}  # default preview size: two heads, a cast (three heads need the pixels)


def parse(argv):
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    ap.add_argument("--self", dest="self_audio", default="", help="Alex's voice (default: the sample's a.wav)")
    ap.add_argument("--partner", dest="partner_audio", default="", help="Sam's voice (default: the sample's b.wav)")
    ap.add_argument("--cast", type=int, default=0, choices=CAST_SIZES,
                    help="a cast of N around a table, animated by Generate cast (the shipped N-person sample)")
    ap.add_argument("--seconds", type=float, default=0.0, help="use only the first S seconds (0: all)")
    ap.add_argument("--preview-fps", type=float, default=25.0,
                    help="frame rate of the preview video (25 divided by a whole number)")
    ap.add_argument("--resolution", default="", help=f"preview size WxH (default {SIZES[False]}, a cast {SIZES[True]})")
    ap.add_argument("--out-dir", default=str(ROOT / "out"))
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    ap.add_argument("--device", default="AUTO", type=str.upper, choices=["AUTO", "GPU", "CPU"])
    args = ap.parse_args(argv)
    args.resolution = args.resolution or SIZES[bool(args.cast)]
    try:
        w, h = (int(v) for v in args.resolution.lower().split("x"))
        assert 16 <= w <= 4096 and 16 <= h <= 4096
    except (ValueError, AssertionError):
        ap.error(f"--resolution {args.resolution}: expected WxH, e.g. 480x270")
    args.size = (w - w % 2, h - h % 2)  # H.264 wants even sizes
    if not 0 < args.preview_fps <= FPS:
        ap.error(f"--preview-fps must be in (0, {FPS}]")
    if args.seconds < 0:
        ap.error("--seconds must be >= 0")
    return args


def main(argv):
    args = parse(argv)
    out_dir = os.path.abspath(args.out_dir)
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "blender.log")
    open(log, "wb").close()
    with blender_output_to(log):  # what Blender prints (per-frame lines, exporters' chatter) goes here
        return demo(args, out_dir, work, log)


def demo(args, out_dir, work, log):
    # Imported here, not above: what bpy prints while it loads belongs in the log too.
    import bpy
    import demo_pictures
    import demo_render
    import demo_scene
    import demo_voices
    import duet_load

    stem = "demo_cast" if args.cast else "demo"
    paths = {k: os.path.join(out_dir, f"{stem}{k}") for k in OUTPUTS}
    step = max(1, round(FPS / args.preview_fps))  # the preview shows every step-th frame
    pfps = FPS / step
    w, h = args.size
    steps = Steps(8)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    duet_load.enable()

    with steps("voices"):
        if args.model and not os.path.isfile(args.model):
            raise BadInputError(f"{args.model}: model file not found")
        voices = demo_voices.prepare(args.self_audio, args.partner_audio, args.seconds,
                                     os.path.join(out_dir, "audio"), args.cast)
        names = voices.names
        n_frames = voices.n_frames
        width = max(len(n) for n in names)
        for name, src in zip(names, voices.sources):
            say(f"      {name:<{width}} speaks {src}")
        say(f"      {voices.seconds:.1f} s -> {n_frames} frames at {FPS} fps")

    seating = f"{len(names)} demo heads around a table" if args.cast else "two demo heads"
    with steps(f"scene: {seating}, camera, Workbench"):
        heads = demo_scene.build_table_scene(args.size, names) if args.cast else demo_scene.build_scene(args.size)
        say(f"      {', '.join(o.name for o in heads)}; {w}x{h}")
    rest_yaw = {o.name: o.rotation_euler.z for o in heads}  # the animation adds to this

    mode, animate = (("Generate cast", demo_scene.animate_cast) if args.cast
                     else ("conversation mode", demo_scene.animate))
    with steps(f"animate (the Duet extension + runtime process, {mode})"):
        animate(heads, voices, args.model, args.backend, args.device)

    with steps("save .blend, export .glb and .fbx"):
        expect = demo_scene.save_and_export(heads, paths, n_frames)

    with steps("check: re-import .glb and .fbx into empty scenes"):
        demo_scene.check_reimport("glb", paths[".glb"], expect, n_frames)
        demo_scene.check_reimport("fbx", paths[".fbx"], expect, n_frames)

    # Everything from here on works from the saved file: what the artist opens.
    scene, times, curves = demo_scene.open_saved(paths[".blend"], names)
    tags = demo_scene.name_tags(scene, names) if args.cast else None
    who = demo_voices.who_speaks(voices)
    frames_dir = os.path.join(work, "frames")

    with steps(f"render the preview ({len(range(1, n_frames + 1, step))} frames at {pfps:g} fps, {w}x{h})"):
        files = demo_render.render_frames(scene, step, frames_dir)

    every = "both voices" if len(names) == 2 else f"all {len(names)} voices"
    with steps(f"encode {stem}.mp4 (H.264 + {every}, AAC) and check it"):
        has_audio = demo_render.encode_preview(files, voices.paths, args.size, step, paths[".mp4"], tags)
        mp4, gains = demo_render.check_mp4(paths[".mp4"], len(files), pfps, args.size, voices.paths, has_audio)
        video = mp4.video[0]
        mixed = "" if gains is None else (f", decoded: {' and '.join(names)} mixed at "
                                          + " / ".join(f"{g:.2f}" for g in gains))
        say(f"      {paths['.mp4']}: video {video['frames']} frames ({video['seconds']:.2f} s at {pfps:g} fps),"
            + (f" audio {mp4.audio[0]['seconds']:.2f} s" if has_audio else " no audio") + mixed)

    with steps("contact sheet and curves"):
        demo_pictures.draw(files, step, curves, times, who, args.size, paths[".png"], paths["_curves.png"],
                           rest_yaw, tags)

    shutil.rmtree(frames_dir, ignore_errors=True)
    say("\nDuet demo done:")
    for p in paths.values():
        say(f"  {p}")
    say(f"  {os.path.join(out_dir, 'audio')}/  (the voices demo.blend plays)")
    say(f"  {log}  (what Blender printed)")
    say("Timings:\n" + steps.summary())
    return 0


def run(argv):
    try:
        return main(argv)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    import duet_load

    duet_load.exit_script(run(duet_load.script_args()))
