"""The demo's scene: two heads face to face (or a cast around a table), animated by the Duet
extension, saved, exported, and read back the way an artist (or another tool) would see them."""

import math
import os

import bpy
import numpy as np
from demo_common import FPS, NAMES, PEOPLE, TURN, BadInputError, DemoError, say
from demo_head import build_head

from model_runtime.channels import CHANNELS

SKINS = ((0.88, 0.54, 0.38, 1.0), (0.42, 0.26, 0.17, 1.0), (0.70, 0.47, 0.33, 1.0))  # linear RGBA, PEOPLE's order
HAIR = ((0.45, 0.22, 0.08, 1.0), (0.05, 0.04, 0.04, 1.0), (0.62, 0.47, 0.20, 1.0))
SHIRTS = ((0.20, 0.42, 0.30, 1.0), (0.55, 0.25, 0.20, 1.0), (0.22, 0.32, 0.62, 1.0))
IRISES = ((0.18, 0.42, 0.62, 1.0), (0.22, 0.12, 0.05, 1.0), (0.25, 0.45, 0.25, 1.0))
SPACING = 0.20            # each head this far from the middle (metres)
CAMERA_AT, CAMERA_LENS, CAMERA_TILT = (0.0, -1.05, 0.135), 50, 2.0  # metres, mm, degrees looking down
# The cast sits on the far half of a round table, seats spread over this arc (degrees, counter-clockwise
# from +X, listed left to right as the camera sees them): everyone faces the table's centre, so
# every face is turned toward the camera (a full circle would show someone's back).
TABLE_ARC = (140.0, 40.0)
TABLE_SEAT_R, TABLE_R, TABLE_TOP = 0.45, 0.32, -0.19  # metres: seats from the centre, table radius, top height
TABLE_COLOUR = (0.33, 0.21, 0.12, 1.0)
TABLE_CAMERA_AT, TABLE_CAMERA_TILT = (0.0, -1.4, 0.40), 12.0
CHECK_KEYS = ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft", "mouthFunnel")  # compared after re-import
CHECK_FRAMES = 7          # that many frames, spread over the clip


# ---------------------------------------------------------------- build and animate

def build_scene(size):
    """Both heads (Alex left, Sam right, each turned to the other), a camera and Workbench."""
    scene = bpy.context.scene
    scene.name = "Duet demo"
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start = 1
    heads = []
    for i, name in enumerate(NAMES):
        side = -1 if i == 0 else 1
        head = build_head(name, skin=SKINS[i], hair=HAIR[i], shirt=SHIRTS[i], iris=IRISES[i])
        head.location = (side * SPACING, 0.0, 0.0)
        head.rotation_mode = "XYZ"
        head.rotation_euler = (0.0, 0.0, -side * TURN)  # Alex (left) turns to +X, Sam to -X
        body = bpy.data.objects.get(f"{name}_Body")
        if body is not None:  # the shoulders copy the head's location, not its rotation
            body.rotation_euler = (0.0, 0.0, -side * TURN * 0.6)
        heads.append(head)

    _camera_and_look(scene, size, CAMERA_AT, CAMERA_TILT)
    return heads


def build_table_scene(size, names):
    """The cast seated around a round table (left to right over TABLE_ARC, each head and its
    shoulders turned to face the centre), a camera that sees every face, and Workbench. Returns
    the heads."""
    scene = bpy.context.scene
    scene.name = "Duet cast demo"
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start = 1
    heads = []
    for name, phi in zip(names, np.radians(np.linspace(*TABLE_ARC, len(names)))):
        k = PEOPLE.index(name)
        head = build_head(name, skin=SKINS[k], hair=HAIR[k], shirt=SHIRTS[k], iris=IRISES[k])
        head.location = (TABLE_SEAT_R * math.cos(phi), TABLE_SEAT_R * math.sin(phi), 0.0)
        head.rotation_mode = "XYZ"
        # The head looks down its local -Y; turned by phi - 90 degrees that points at the centre.
        yaw = float(phi - math.pi / 2)
        head.rotation_euler = (0.0, 0.0, yaw)
        body = bpy.data.objects.get(f"{name}_Body")
        if body is not None:  # the shoulders copy the head's location, not its rotation
            body.rotation_euler = (0.0, 0.0, yaw)
        heads.append(head)
    bpy.ops.mesh.primitive_cylinder_add(vertices=96, radius=TABLE_R, depth=0.04, location=(0.0, 0.0, TABLE_TOP - 0.02))
    table = bpy.context.active_object
    table.name = "Table"
    mat = bpy.data.materials.new("Table")
    mat.diffuse_color = TABLE_COLOUR
    table.data.materials.append(mat)
    _camera_and_look(scene, size, TABLE_CAMERA_AT, TABLE_CAMERA_TILT)
    return heads


def _camera_and_look(scene, size, at, tilt):
    """The camera at `at` looking along +Y, `tilt` degrees down; Workbench, studio light, a plain backdrop."""
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.lens = CAMERA_LENS
    cam.location = at
    cam.rotation_euler = (math.radians(90 - tilt), 0.0, 0.0)
    scene.camera = cam

    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x, r.resolution_y = size
    r.resolution_percentage = 100
    r.film_transparent = False
    r.use_sequencer = False  # the 3D scene; the sequencer only carries the voices here
    sh = scene.display.shading
    sh.light = "STUDIO"
    sh.color_type = "MATERIAL"
    sh.show_specular_highlight = True
    sh.show_shadows = True
    sh.shadow_intensity = 0.25
    sh.show_object_outline = False
    scene.display.render_aa = "FXAA"
    world = bpy.data.worlds.new("Backdrop")
    world.color = (0.55, 0.62, 0.70)  # a plain cool grey-blue: both skin tones read against it
    scene.world = world
    scene.view_settings.view_transform = "Standard"


def animate(heads, voices, model="", backend="onnx", device="AUTO"):
    """Conversation mode through the panel's own properties and the extension's generate.start:
    the runtime process predicts both faces (A alone, B given A, A given B)."""
    _set_runtime(model, backend, device)
    s = bpy.context.scene.duet
    s.conversation = True
    s.character, s.character_b = heads
    s.self_audio, s.partner_audio = voices.paths
    s.start_frame = 1
    s.head_target = "OBJECT"
    s.add_sound_strips = True
    s.set_frame_range = True
    _run(None, voices.n_frames)


def animate_cast(heads, voices, model="", backend="onnx", device="AUTO"):
    """Generate cast through the panel's own properties: the Cast list gets one row per head (its
    voice, the head turning on its own object, facing -Y in its own space) and the extension's
    cast plan sends one `cast` request: every face predicted from its own voice and the others',
    every head and eyes turned toward whoever speaks."""
    from duet.addon import cast

    _set_runtime(model, backend, device)
    s = bpy.context.scene.duet
    s.cast.clear()
    for head, path in zip(heads, voices.paths):
        row = s.cast.add()
        row.character = head
        row.voice = path
        row.head_target = "OBJECT"  # first: head_object's picker filters on it
        row.head_object = head
        row.forward_axis = "NEG_Y"
    s.start_frame = 1
    s.add_sound_strips = True
    s.set_frame_range = True
    s.cast_attention = True
    _run(cast.build_plan, voices.n_frames)


def _set_runtime(model, backend, device):
    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.model_path = os.path.abspath(model) if model else ""
    prefs.backend, prefs.device = backend, device


def _run(build, n_frames):
    """One job through the extension's generate.start (wait=True); its refusals and failures as the
    demo's two errors."""
    from duet.addon import generate
    from duet.addon.job import JobState

    try:
        try:
            job = generate.start(bpy.context, wait=True, build=build)
        except generate.UserError as exc:
            raise BadInputError(str(exc))
        if job.state is not JobState.DONE:
            if "Bad " in job.message:
                raise BadInputError(job.message)
            raise DemoError(job.message)
    finally:
        generate.stop_all()  # the runtime process and the job's temporary files
    say("      " + job.message)
    if "untrained" in job.message:
        say("      note: the model is untrained (random weights): expect noise, not animation")
    sc = bpy.context.scene
    if sc.frame_end - sc.frame_start + 1 != n_frames:
        raise DemoError(f"the scene has {sc.frame_end - sc.frame_start + 1} frames, expected {n_frames}")


# ---------------------------------------------------------------- save, export, check the exports

def save_and_export(heads, paths, n_frames):
    """demo.blend (its sounds relative to it), .glb and .fbx; every output of an earlier run in
    `paths` goes first. Returns what the scene shows at a few frames, for check_reimport."""
    from duet.addon import export

    expect = sample_scene(heads, sorted({int(f) for f in np.linspace(1, n_frames, CHECK_FRAMES).round()}))
    for p in paths.values():
        if os.path.exists(p):
            os.remove(p)
    out_dir = os.path.dirname(paths[".blend"])
    for snd in bpy.data.sounds:  # '//audio/alex.wav': the folder can move with its .blend
        snd.filepath = bpy.path.relpath(snd.filepath, start=out_dir)
    bpy.ops.wm.save_as_mainfile(filepath=paths[".blend"])
    export.export_gltf(bpy.context, paths[".glb"], heads)
    export.export_fbx(bpy.context, paths[".fbx"], heads)
    for k in (".blend", ".glb", ".fbx"):
        say(f"      {paths[k]}  ({os.path.getsize(paths[k]) / 1e6:.1f} MB)")
    return expect


def sample_scene(heads, frames):
    """What the artist sees at those frames: key values and the head's world rotation."""
    scene = bpy.context.scene
    out = {h.name: {} for h in heads}
    for f in frames:
        scene.frame_set(f)
        for h in heads:
            kbs = h.data.shape_keys.key_blocks
            out[h.name][f] = ([kbs[k].value for k in CHECK_KEYS], tuple(h.matrix_world.to_euler()))
    return out


def check_reimport(kind, path, expect, n_frames):
    """Import `path` into an empty scene; both heads must carry their shape-key animation."""
    from duet.addon.validate import has_shape_keys

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    if kind == "glb":
        bpy.ops.import_scene.gltf(filepath=path)
    else:  # Blender writes frame f at FBX time f/fps; its importer adds a 1-frame offset by default
        bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)
    clips = _play_all_clips()
    lines, worst_key, worst_rot = [], 0.0, 0.0
    for name, by_frame in expect.items():
        obj = bpy.data.objects.get(name)
        if not has_shape_keys(obj):
            raise DemoError(f"{path}: no mesh '{name}' with shape keys after re-import")
        rng = keyed_range(obj)
        if rng is None:
            raise DemoError(f"{path}: '{name}' came back without shape-key animation")
        first, last, count = rng
        if last - first + 1 != n_frames:
            raise DemoError(f"{path}: '{name}' is keyed over {last - first + 1} frames, expected {n_frames}")
        kbs = obj.data.shape_keys.key_blocks
        for f, (vals, rot) in by_frame.items():
            scene.frame_set(f)
            worst_key = max(worst_key, max(abs(kbs[k].value - v) for k, v in zip(CHECK_KEYS, vals)))
            got = obj.matrix_world.to_euler()
            worst_rot = max(worst_rot, max(abs(math.remainder(g - e, math.tau)) for g, e in zip(got, rot)))
        lines.append(f"{name}: frames {first}-{last} ({count} keys)")
    if worst_key > 2e-3 or worst_rot > 2e-3:
        raise DemoError(f"{path}: re-imported values differ from the scene (shape keys by {worst_key:.4f}, "
                        f"head rotation by {worst_rot:.4f} rad)")
    if kind == "glb":
        lines.append(f"{clips} clips")
    say(f"      {os.path.basename(path)} re-imported: " + "; ".join(lines)
        + f"; {len(CHECK_KEYS)} keys and head rotation match the scene at {len(next(iter(expect.values())))}"
          f" frames (max diff {worst_key:.1e}, {worst_rot:.1e} rad)")


def _play_all_clips():
    """glTF keeps one clip per action (each character's face and head) and Blender's importer makes
    one of them active, the others muted NLA tracks: make each one active, as a player plays all
    clips together. Returns how many clips there are."""
    clips = 0
    for ob in bpy.data.objects:
        for idb in (ob, getattr(ob.data, "shape_keys", None)):
            ad = idb.animation_data if idb is not None else None
            strips = [s for t in ad.nla_tracks for s in t.strips if s.action] if ad is not None else []
            clips += len(strips)
            if ad is not None and ad.action is None and strips:
                ad.action = strips[0].action
                if getattr(strips[0], "action_slot", None) is not None:
                    ad.action_slot = strips[0].action_slot
    return clips


def keyed_range(obj):
    """(first, last, count) of the keyframes on the shape keys' jawOpen curve (any action / strip)."""
    for (path, _i), (fc, off) in object_fcurves(obj.data.shape_keys).items():
        if path == 'key_blocks["jawOpen"].value':
            xs = [k.co[0] + off for k in fc.keyframe_points]
            return round(min(xs)), round(max(xs)), len(xs)
    return None


# ---------------------------------------------------------------- read back the saved scene

def open_saved(path, names=NAMES):
    """Open demo.blend (what the artist opens); returns the scene, its frames and their times, and
    each head's curves there: {name: {ARKit channel or 'rot0..2': values}}."""
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    scene = bpy.context.scene
    frames = np.arange(scene.frame_start, scene.frame_end + 1)
    times = (frames - scene.frame_start) / FPS
    curves = {n: read_curves(bpy.data.objects[n], frames) for n in names}
    return scene, times, curves


def name_tags(scene, names, above=0.30):
    """Where each head is in the camera's picture: {name: (x, y)} as fractions of the frame (y from
    the bottom), `above` metres over the head's origin (the neck), at the scene's current frame."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    out = {}
    for n in names:
        p = world_to_camera_view(scene, scene.camera, bpy.data.objects[n].matrix_world.translation
                                 + Vector((0.0, 0.0, above)))
        out[n] = (float(p.x), float(p.y))
    return out


def read_curves(obj, frames):
    """{ARKit channel or 'rot0..2': values at frames}: the shape keys as the add-on samples them
    (addon/scene.sample_shape_keys), plus the F-curves on the object's rotation."""
    from duet.addon.scene import sample_shape_keys

    weights, missing = sample_shape_keys(obj, frames)
    res = {ch: weights[:, i] for i, ch in enumerate(CHANNELS) if ch not in missing}
    for (path, idx), (fc, off) in object_fcurves(obj).items():
        if path == "rotation_euler":
            res[f"rot{idx}"] = np.array([fc.evaluate(f - off) for f in frames])
    return res


def object_fcurves(idb):
    """{(data_path, index): (fcurve, frame offset)} of what drives `idb` (its action or NLA strips),
    as the add-on itself reads it back (addon/scene.effective_curves)."""
    from duet.addon.scene import effective_curves

    out = {}
    for fcs, offset in effective_curves(idb):
        for fc in fcs:
            out.setdefault((fc.data_path, fc.array_index), (fc, offset))
    return out
