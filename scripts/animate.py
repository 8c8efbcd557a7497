"""Animate a character headless: open a .blend, generate, save (and optionally export).

    python scripts/animate.py --blend in.blend --object Face --self a.wav [--partner b.wav]
        [--partner-motion m.csv|m.npz] [--start-frame 1] [--model M] [--backend onnx|torch]
        [--device auto|gpu|cpu] --out out.blend [--export out.glb|out.fbx]

Runs with the PyPI bpy module, or in Blender:
`blender -b --factory-startup --python-exit-code 1 --python scripts/animate.py -- ARGS`.
Exit codes: 0 done, 2 bad input (one line on stderr), 1 anything else.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse(argv):
    ap = argparse.ArgumentParser(prog="animate", description=__doc__.splitlines()[0])
    ap.add_argument("--blend", required=True)
    ap.add_argument("--object", required=True, help="the character: a mesh with ARKit-style shape keys")
    ap.add_argument("--self", dest="self_audio", required=True)
    ap.add_argument("--partner", default="")
    ap.add_argument("--partner-motion", default="")
    ap.add_argument("--start-frame", type=int, default=None, help="default: the scene's start frame")
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    ap.add_argument("--device", default="AUTO", type=str.upper, choices=["AUTO", "GPU", "CPU"])
    ap.add_argument("--head", default="NONE", type=str.upper, choices=["NONE", "OBJECT"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--export", default="")
    ap.add_argument("--timeout", type=float, default=0.0)
    return ap.parse_args(argv)


def fail(msg, code=2):
    print(f"error: {msg}", file=sys.stderr)
    return code


def main(argv):
    args = parse(argv)
    for what, path in (("blend file", args.blend), ("own voice", args.self_audio),
                       ("partner voice", args.partner), ("partner motion", args.partner_motion)):
        if path and not os.path.isfile(path):
            return fail(f"{path}: {what} not found")
    if not args.out.endswith(".blend"):
        return fail(f"{args.out}: --out must be a .blend file")
    if args.export and not args.export.lower().endswith((".glb", ".gltf", ".fbx")):
        return fail(f"{args.export}: --export must end in .glb, .gltf or .fbx")

    import bpy
    import duet_load

    bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend), load_ui=False)
    duet_load.enable()
    from duet.addon import export, generate, validate
    from duet.addon.job import JobState

    obj = bpy.data.objects.get(args.object)
    if (why := validate.character_problem(obj, f"{args.blend}: --object {args.object}")) is not None:
        return fail(why)
    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.model_path = os.path.abspath(args.model) if args.model else ""
    prefs.backend, prefs.device = args.backend, args.device
    scene = bpy.context.scene
    s = scene.duet
    s.character = obj
    s.self_audio = os.path.abspath(args.self_audio)
    s.partner_audio = os.path.abspath(args.partner) if args.partner else ""
    if args.partner_motion:
        s.partner_mode, s.partner_csv = "CSV", os.path.abspath(args.partner_motion)
    s.start_frame = scene.frame_start if args.start_frame is None else args.start_frame
    s.head_target = args.head
    try:
        try:
            job = generate.start(bpy.context, wait=True, timeout=args.timeout or None)
        except generate.UserError as exc:
            return fail(str(exc))
        if job.state is not JobState.DONE:
            return fail(job.message, 2 if "Bad " in job.message else 1)
        print(job.message)
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.out))
        if args.export:
            fn = export.export_fbx if args.export.lower().endswith(".fbx") else export.export_gltf
            fn(bpy.context, os.path.abspath(args.export), [obj])
            print(f"exported {args.export}")
        return 0
    finally:
        generate.stop_all()  # the runtime process and the job's temporary files


if __name__ == "__main__":
    import duet_load

    duet_load.exit_script(main(duet_load.script_args()))
