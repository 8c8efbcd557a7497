"""Animate a character, or a cast, headless: open a .blend, generate, save (and optionally export).

    python scripts/animate.py --blend in.blend --object Face --self a.wav [--partner b.wav]
        [--partner-motion m.csv|m.npz] [--start-frame 1] [--model M] [--backend onnx|torch]
        [--device auto|gpu|cpu] --out out.blend [--export out.glb|out.fbx]
    python scripts/animate.py --blend in.blend --cast Alex=a.wav Sam=b.wav [...] --out out.blend
    python scripts/animate.py --blend in.blend --cast-file cast.json [...] --out out.blend

A cast replaces the .blend's Cast list and runs Generate cast: --cast makes one row per OBJECT=VOICE
in that order (the head turns on the object itself, facing -Y); --cast-file reads JSON,
  {"characters": [{"object": "Alex", "voice": "a.wav", "head": "object"|"none"|"bone",
                   "head_object": "", "head_bone": "", "forward": "-Y"|"+Y"|"+X"|"-X",
                   "mute": false}, ...], "seed": 0, "attention": true}
where only object and voice are required (a voice path is relative to the JSON file; head_object
empty: the object itself; seed and attention left out: the .blend's). With a cast, --export writes
every character and head object (glTF: the scene's frame range as one clip).

Runs with the PyPI bpy module, or in Blender:
`blender -b --factory-startup --python-exit-code 1 --python scripts/animate.py -- ARGS`.
Exit codes: 0 done, 2 bad input (one line on stderr), 1 anything else.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HEADS = {"object": "OBJECT", "none": "NONE", "bone": "BONE"}
FORWARDS = {"-Y": "NEG_Y", "+Y": "POS_Y", "+X": "POS_X", "-X": "NEG_X"}
ROW_KEYS = ("object", "voice", "head", "head_object", "head_bone", "forward", "mute")
FILE_KEYS = ("characters", "seed", "attention")


class BadInput(Exception):
    """One line on what is wrong with the arguments: exit 2, nothing written."""


def parse(argv):
    ap = argparse.ArgumentParser(prog="animate", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", required=True)
    ap.add_argument("--object", default="", help="the character: a mesh with ARKit-style shape keys")
    ap.add_argument("--self", dest="self_audio", default="")
    ap.add_argument("--partner", default="")
    ap.add_argument("--partner-motion", default="")
    ap.add_argument("--cast", nargs="+", action="extend", default=[], metavar="OBJECT=VOICE",
                    help="a cast instead of --object/--self: one row per pair, in this order")
    ap.add_argument("--cast-file", default="", help="a cast from JSON (see below)")
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


# --- a cast from the command line or a JSON file (before Blender opens anything) -------------------

def _row(obj, voice, head="OBJECT", head_object="", head_bone="", forward="NEG_Y", mute=False):
    return {"object": obj, "voice": voice, "head": head, "head_object": head_object, "head_bone": head_bone,
            "forward": forward, "mute": mute}


def cast_from_pairs(pairs):
    """Rows from OBJECT=VOICE pairs (split at the first '='; voices relative to the working folder)."""
    rows = []
    for pair in pairs:
        obj, eq, voice = pair.partition("=")
        if not (obj and eq and voice):
            raise BadInput(f"--cast {pair!r}: expected OBJECT=VOICE")
        if not os.path.isfile(voice):
            raise BadInput(f"{voice}: {obj}'s voice not found")
        rows.append(_row(obj, os.path.abspath(voice)))
    return {"characters": rows}


def _text(entry, key, where, required=False):
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise BadInput(f"{where}: \"{key}\" must be a {'non-empty ' if required else ''}string")
    return value


def _choice(entry, key, table, default, where):
    value = entry.get(key, default)
    if value not in table:
        raise BadInput(f"{where}: \"{key}\" must be one of {', '.join(table)}, not {json.dumps(value)}")
    return table[value]


def _unknown(d, known, where):
    extra = [k for k in d if k not in known]
    if extra:
        raise BadInput(f"{where}: unknown key \"{extra[0]}\" (known: {', '.join(known)})")


def cast_from_file(path):
    """The cast a JSON file describes, checked; every problem is one BadInput line naming the file."""
    if not os.path.isfile(path):
        raise BadInput(f"{path}: cast file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object with \"characters\"")
    _unknown(data, FILE_KEYS, path)
    chars = data.get("characters")
    if not isinstance(chars, list) or not chars:
        raise BadInput(f"{path}: \"characters\" must be a non-empty list")
    seed, attention = data.get("seed"), data.get("attention")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise BadInput(f"{path}: \"seed\" must be a whole number, 0 or more")
    if attention is not None and not isinstance(attention, bool):
        raise BadInput(f"{path}: \"attention\" must be true or false")
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    for k, entry in enumerate(chars):
        where = f"{path}: characters[{k}]"
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: expected an object with \"object\" and \"voice\"")
        _unknown(entry, ROW_KEYS, where)
        obj = _text(entry, "object", where, required=True)
        where = f"{where} ({obj})"
        voice = os.path.join(base, os.path.expanduser(_text(entry, "voice", where, required=True)))
        head = _choice(entry, "head", HEADS, "object", where)
        head_object, head_bone = _text(entry, "head_object", where), _text(entry, "head_bone", where)
        forward = _choice(entry, "forward", FORWARDS, "-Y", where)
        mute = entry.get("mute", False)
        if not isinstance(mute, bool):
            raise BadInput(f"{where}: \"mute\" must be true or false")
        if head == "BONE" and not (head_object and head_bone):
            raise BadInput(f"{where}: head \"bone\" needs \"head_object\" (the armature) and \"head_bone\"")
        if head_bone and head != "BONE":
            raise BadInput(f"{where}: \"head_bone\" needs head \"bone\"")
        if head_object and head == "NONE":
            raise BadInput(f"{where}: \"head_object\" with head \"none\" turns nothing")
        if not os.path.isfile(voice):
            raise BadInput(f"{where}: voice {voice} not found")
        rows.append(_row(obj, os.path.normpath(voice), head, head_object, head_bone, forward, mute))
    return {"characters": rows, "seed": seed, "attention": attention}


def check_args(args):
    """The cast (None: one character), or BadInput."""
    single = [f"--{k}" for k, v in (("object", args.object), ("self", args.self_audio), ("partner", args.partner),
                                    ("partner-motion", args.partner_motion)) if v] + \
             (["--head"] if args.head != "NONE" else [])
    if args.cast and args.cast_file:
        raise BadInput("give --cast or --cast-file, not both")
    if (args.cast or args.cast_file) and single:
        raise BadInput(f"{single[0]} is for one character: a cast gives each row its own voice and head")
    if not (args.cast or args.cast_file) and not (args.object and args.self_audio):
        raise BadInput("give --object and --self (one character), or --cast / --cast-file")
    for what, path in (("blend file", args.blend), ("own voice", args.self_audio),
                       ("partner voice", args.partner), ("partner motion", args.partner_motion)):
        if path and not os.path.isfile(path):
            raise BadInput(f"{path}: {what} not found")
    if not args.out.endswith(".blend"):
        raise BadInput(f"{args.out}: --out must be a .blend file")
    if args.export and not args.export.lower().endswith((".glb", ".gltf", ".fbx")):
        raise BadInput(f"{args.export}: --export must end in .glb, .gltf or .fbx")
    if args.cast:
        return cast_from_pairs(args.cast)
    if args.cast_file:
        return cast_from_file(args.cast_file)
    return None


# --- the scene's settings for one character or a cast ----------------------------------------------

def set_character(args, scene):
    """The panel's settings for --object; returns what to export."""
    import bpy
    from duet.addon import validate

    obj = bpy.data.objects.get(args.object)
    if (why := validate.character_problem(obj, f"{args.blend}: --object {args.object}")) is not None:
        raise BadInput(why)
    s = scene.duet
    s.character = obj
    s.self_audio = os.path.abspath(args.self_audio)
    s.partner_audio = os.path.abspath(args.partner) if args.partner else ""
    if args.partner_motion:
        s.partner_mode, s.partner_csv = "CSV", os.path.abspath(args.partner_motion)
    s.head_target = args.head
    return [obj]


def set_cast(args, scene, spec):
    """The scene's Cast list from `spec`, replacing what the .blend had."""
    from duet.addon import validate

    s = scene.duet
    s.cast.clear()
    for n, r in enumerate(spec["characters"], 1):
        where = f"{args.blend}: cast row {n}"
        obj = scene.objects.get(r["object"])
        if obj is None:
            raise BadInput(f"{where}: no object '{r['object']}' in scene '{scene.name}'")
        if (why := validate.character_problem(obj, f"{where} '{r['object']}'")) is not None:
            raise BadInput(why)
        row = s.cast.add()
        row.character, row.voice = obj, r["voice"]
        row.head_target = r["head"]  # first: head_object's picker filters on it
        if r["head_object"]:
            head = scene.objects.get(r["head_object"])
            if head is None:
                raise BadInput(f"{where}: no object '{r['head_object']}' in scene '{scene.name}' "
                               f"for {r['object']}'s head")
            row.head_object = head
        row.head_bone, row.forward_axis, row.mute = r["head_bone"], r["forward"], r["mute"]
    if spec.get("seed") is not None:
        s.seed = spec["seed"]
    if spec.get("attention") is not None:
        s.cast_attention = spec["attention"]


def main(argv):
    args = parse(argv)
    try:
        spec = check_args(args)
    except BadInput as exc:
        return fail(str(exc))

    import bpy
    import duet_load

    bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend), load_ui=False)
    duet_load.enable()
    from duet.addon import cast, export, generate
    from duet.addon.job import JobState

    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.model_path = os.path.abspath(args.model) if args.model else ""
    prefs.backend, prefs.device = args.backend, args.device
    scene = bpy.context.scene
    try:
        objects = set_character(args, scene) if spec is None else set_cast(args, scene, spec)
    except BadInput as exc:
        return fail(str(exc))
    scene.duet.start_frame = scene.frame_start if args.start_frame is None else args.start_frame
    try:
        try:
            job = generate.start(bpy.context, wait=True, timeout=args.timeout or None,
                                 build=None if spec is None else cast.build_plan)
        except generate.UserError as exc:
            return fail(str(exc))
        if job.state is not JobState.DONE:
            return fail(job.message, 2 if "Bad " in job.message else 1)
        print(job.message)
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.out))
        if args.export:
            path = os.path.abspath(args.export)
            if spec is not None:
                objects = cast.export_objects(bpy.context)
            if args.export.lower().endswith(".fbx"):
                export.export_fbx(bpy.context, path, objects)
            else:
                export.export_gltf(bpy.context, path, objects, one_clip=spec is not None)
            print(f"exported {args.export}")
        return 0
    finally:
        generate.stop_all()  # the runtime process and the job's temporary files


if __name__ == "__main__":
    import duet_load

    duet_load.exit_script(main(duet_load.script_args()))
