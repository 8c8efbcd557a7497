"""`make demo`: two demo heads in conversation, animated through the real extension and runtime.

    python scripts/demo.py [--self A.wav --partner B.wav] [--seconds S] [--preview-fps 25]
        [--resolution 480x270] [--out-dir out] [--model M] [--device auto|gpu|cpu]

With no voices it animates the shipped sample conversation (assets/sample: Alex speaks a.wav,
Sam speaks b.wav); with --self/--partner, Alex speaks SELF and Sam speaks PARTNER. It writes,
into --out-dir:

    demo.blend         the scene: both heads keyed (shape keys + head rotation), sound strips
    demo.glb, .fbx     both heads with their animation (addon/export.py), each re-imported and checked
    demo.mp4           a Workbench preview with both voices mixed in (Blender's own FFmpeg: H.264 + AAC)
    demo.png           contact sheet: moments where each one speaks, time-stamped
    demo_curves.png    jaw / mouth / blink / head curves read back from demo.blend, speech shaded
    audio/             the voices the .blend plays (copies, trimmed to --seconds)

Runs with the PyPI bpy module in the repository's .venv (`make setup`: it also needs soundfile,
scipy and matplotlib, which Blender's own Python lacks); tested with bpy 4.2, 4.5 and 5.0.
Exit codes: 0 done, 2 bad input (one line on stderr), 1 anything else (a failed check included).
"""

import argparse
import glob
import json
import math
import os
import shutil
import struct
import sys
import textwrap
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "assets", "sample")
FPS = 25                  # the scene's (and the network's) frame rate
NAMES = ("Alex", "Sam")   # Alex speaks --self (sample a.wav), Sam speaks --partner (sample b.wav)
SKINS = ((0.88, 0.54, 0.38, 1.0), (0.42, 0.26, 0.17, 1.0))     # linear RGBA
HAIR = ((0.45, 0.22, 0.08, 1.0), (0.05, 0.04, 0.04, 1.0))
SHIRTS = ((0.20, 0.42, 0.30, 1.0), (0.55, 0.25, 0.20, 1.0))
IRISES = ((0.18, 0.42, 0.62, 1.0), (0.22, 0.12, 0.05, 1.0))
LABEL_X = (0.27, 0.73)    # name tags in the preview, fraction of the width
COLOURS = ("#2e8b57", "#b5523b")  # plot colours: Alex green, Sam brick (their shirts)
SPACING = 0.20            # each head this far from the middle (metres)
TURN = math.radians(45)   # rest yaw: each faces the other, turned this much from the camera
CAMERA_AT, CAMERA_LENS, CAMERA_TILT = (0.0, -1.05, 0.135), 50, 2.0  # metres, mm, degrees looking down
CHECK_KEYS = ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft", "mouthFunnel")
SHEET_COLS, SHEET_ROWS, SHEET_PAD, SHEET_TITLE = 3, 2, 8, 0.16  # title band: a fraction of frame height
CURVES_SIZE = (1400, 1000)  # demo_curves.png, pixels


class DemoError(Exception):
    """A check failed or something needed is missing (exit 1)."""


class BadInputError(Exception):
    """The user's to fix: one line naming the file (exit 2)."""


def parse(argv):
    ap = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    ap.add_argument("--self", dest="self_audio", default="", help="Alex's voice (default: the sample's a.wav)")
    ap.add_argument("--partner", dest="partner_audio", default="", help="Sam's voice (default: the sample's b.wav)")
    ap.add_argument("--seconds", type=float, default=0.0, help="use only the first S seconds (0: all)")
    ap.add_argument("--preview-fps", type=float, default=25.0,
                    help="frame rate of the preview video (25 divided by a whole number)")
    ap.add_argument("--resolution", default="480x270", help="preview size WxH")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "out"))
    ap.add_argument("--model", default="")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    ap.add_argument("--device", default="AUTO", type=str.upper, choices=["AUTO", "GPU", "CPU"])
    args = ap.parse_args(argv)
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


# ---------------------------------------------------------------- progress and timing

class Steps:
    def __init__(self, total):
        self.total, self.n, self.times = total, 0, []
        self.t0 = time.monotonic()

    @contextmanager
    def __call__(self, title):
        self.n += 1
        say(f"[{self.n}/{self.total}] {title} ...")
        t = time.monotonic()
        yield
        dt = time.monotonic() - t
        self.times.append((title, dt))
        say(f"      {title}: {dt:.1f} s")

    def summary(self):
        width = max(len(t) for t, _ in self.times)
        lines = [f"  {t:<{width}}  {dt:6.1f} s" for t, dt in self.times]
        lines.append(f"  {'total':<{width}}  {time.monotonic() - self.t0:6.1f} s")
        return "\n".join(lines)


_out_fd = None  # the terminal's stdout while Blender's own per-frame chatter goes to a log


def say(msg):
    if _out_fd is None:
        print(msg, flush=True)
    else:
        os.write(_out_fd, (msg + "\n").encode())


@contextmanager
def blender_output_to(log_path):
    """Send what Blender prints (per-frame render lines, EGL notes) to a log; say() still prints."""
    global _out_fd
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    _out_fd = saved[0]
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        _out_fd = None


@contextmanager
def frame_progress(total, label, parts=10):
    """Print 'label: frame i/total' `parts` times while Blender renders (a render_post handler)."""
    import bpy

    count = [0]
    every = max(1, total // parts)

    def post(*_args):
        count[0] += 1
        if count[0] % every == 0 or count[0] == total:
            say(f"      {label}: frame {count[0]}/{total}")
    bpy.app.handlers.render_post.append(post)
    try:
        yield count
    finally:
        # A Python handler left registered makes the PyPI bpy module hang at exit.
        bpy.app.handlers.render_post.remove(post)


# ---------------------------------------------------------------- input

def speaking_segments_sample(seconds):
    """{name: [(start, end), ...]} from assets/sample/timeline.json: turns and backchannels."""
    with open(os.path.join(SAMPLE, "timeline.json"), encoding="utf-8") as f:
        tl = json.load(f)
    out = {}
    for name, key in zip(NAMES, ("a", "b")):
        track = tl["tracks"][key]
        segs = [(float(s[0]), float(s[1])) for s in track.get("segments", [])]
        segs += [(float(b[0]), float(b[1])) for b in track.get("backchannels", [])]
        out[name] = sorted((a, min(b, seconds)) for a, b in segs if a < seconds)
    lines = [(t["track"], float(t["start"]), float(t["end"]), t.get("text", "")) for t in tl.get("turns", [])]
    return out, {(dict(a=NAMES[0], b=NAMES[1])[k], round(s, 3)): text for k, s, _e, text in lines}


def speaking_segments_vad(samples, seconds):
    """{name: [(start, end), ...]} from the runtime's energy voice-activity measure (25 frames/s)."""
    from duet.model_runtime.audio import SAMPLE_RATE
    from duet.model_runtime.liveliness import voice_activity

    spf = SAMPLE_RATE // FPS
    n = int(math.ceil(seconds * FPS))
    a, b = samples
    out = {}
    for name, own, other in ((NAMES[0], a, b), (NAMES[1], b, a)):
        out[name] = mask_segments(voice_activity(own, other, n, spf), FPS)
    return out


def mask_segments(mask, fps):
    segs, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            segs.append((start / fps, i / fps))
            start = None
    return segs


def prepare_voices(args, audio_dir):
    """Validate both voices, copy them (trimmed) next to the .blend; returns paths, samples, seconds."""
    import soundfile as sf
    from duet.model_runtime.audio import load_audio
    from duet.model_runtime.errors import BadInput

    if bool(args.self_audio) != bool(args.partner_audio):
        raise BadInputError("give both voices: --self A.wav (Alex) and --partner B.wav (Sam)")
    sample = not args.self_audio
    if sample:
        srcs = [os.path.join(SAMPLE, "a.wav"), os.path.join(SAMPLE, "b.wav")]
        for p in srcs + [os.path.join(SAMPLE, "timeline.json")]:
            if not os.path.isfile(p):
                raise BadInputError(f"{p}: sample conversation not found "
                                    "(rebuild it: .venv/bin/python scripts/make_sample_conversation.py)")
    else:
        srcs = [os.path.abspath(args.self_audio), os.path.abspath(args.partner_audio)]
    tracks = []
    for p in srcs:
        try:
            tracks.append(load_audio(p))  # the runtime's own reader: same errors as a generation
        except BadInput as exc:
            raise BadInputError(str(exc))
    full = max(t.duration for t in tracks)
    seconds = min(args.seconds, full) if args.seconds > 0 else full
    os.makedirs(audio_dir, exist_ok=True)
    paths = []
    for name, src in zip(NAMES, srcs):
        info = sf.info(src)
        data, sr = sf.read(src, frames=int(round(seconds * info.samplerate)), dtype="float32", always_2d=True)
        dst = os.path.join(audio_dir, f"{name.lower()}.wav")
        sf.write(dst, data, sr, subtype="PCM_16")  # a copy the .blend can keep playing
        paths.append(dst)
    n = int(round(seconds * 16000))
    samples = [t.samples[:n] for t in tracks]
    return sample, srcs, paths, samples, seconds


# ---------------------------------------------------------------- scene

def build_scene(size):
    import bpy
    from demo_head import build_head

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

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.lens = CAMERA_LENS
    cam.location = CAMERA_AT
    cam.rotation_euler = (math.radians(90 - CAMERA_TILT), 0.0, 0.0)
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
    return heads


def animate(args, heads, voices):
    import bpy
    from duet.addon import generate

    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.model_path = os.path.abspath(args.model) if args.model else ""
    prefs.backend, prefs.device = args.backend, args.device
    s = bpy.context.scene.duet
    s.conversation = True
    s.character, s.character_b = heads
    s.self_audio, s.partner_audio = voices
    s.start_frame = 1
    s.head_target = "OBJECT"
    s.add_sound_strips = True
    s.set_frame_range = True
    try:
        try:
            job = generate.start(bpy.context, wait=True)
        except generate.UserError as exc:
            raise BadInputError(str(exc))
        if job.state != "done":
            if "Bad " in job.message:
                raise BadInputError(job.message)
            raise DemoError(job.message)
    finally:
        generate.stop_all()  # the runtime process and the job's temporary files
    say("      " + job.message)
    if "untrained" in job.message:
        say("      note: the model is untrained (random weights): expect noise, not animation")


# ---------------------------------------------------------------- read back, check

def object_fcurves(idb):
    """{(data_path, index): (fcurve, frame offset)} of what drives `idb` (its action or NLA strips),
    as the add-on itself reads it back (addon/scene.effective_curves)."""
    from duet.addon.scene import effective_curves

    out = {}
    for fcs, offset in effective_curves(idb):
        for fc in fcs:
            out.setdefault((fc.data_path, fc.array_index), (fc, offset))
    return out


def read_curves(obj, frames):
    """{ARKit channel or 'rot0..2': values at frames}: the shape keys as the add-on samples them
    (addon/scene.sample_shape_keys), plus the F-curves on the object's rotation."""
    import numpy as np
    from duet.addon.scene import sample_shape_keys
    from duet.model_runtime.channels import CHANNELS

    weights, missing = sample_shape_keys(obj, frames)
    res = {ch: weights[:, i] for i, ch in enumerate(CHANNELS) if ch not in missing}
    for (path, idx), (fc, off) in object_fcurves(obj).items():
        if path == "rotation_euler":
            res[f"rot{idx}"] = np.array([fc.evaluate(f - off) for f in frames])
    return res


def keyed_range(obj):
    """(first, last, count) of the keyframes on the shape keys' jawOpen curve (any action / strip)."""
    for (path, _i), (fc, off) in object_fcurves(obj.data.shape_keys).items():
        if path == 'key_blocks["jawOpen"].value':
            xs = [k.co[0] + off for k in fc.keyframe_points]
            return round(min(xs)), round(max(xs)), len(xs)
    return None


def sample_scene(heads, frames):
    """What the artist sees at those frames: key values and the head's world rotation."""
    import bpy

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
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    if kind == "glb":
        bpy.ops.import_scene.gltf(filepath=path)
    else:  # Blender writes frame f at FBX time f/fps; its importer adds a 1-frame offset by default
        bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)
    # glTF keeps one clip per action (each character's face and head) and Blender's importer makes
    # one of them active, the others muted NLA tracks: make each one active, as a player plays
    # all clips together.
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
    lines, worst_key, worst_rot = [], 0.0, 0.0
    for name, by_frame in expect.items():
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
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


# ---------------------------------------------------------------- MP4

def _boxes(b, start, end):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", b[start:start + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", b[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        if size < head:
            return
        yield kind.decode("latin-1"), start + head, start + size
        start += size


def _find(b, start, end, path):
    for kind, s, e in _boxes(b, start, end):
        if kind == path[0]:
            return (s, e) if len(path) == 1 else _find(b, s, e, path[1:])
    return None


def probe_mp4(path):
    """[{'kind': 'vide'|'soun', 'samples', 'seconds', 'timescale'}] per track, read from the MP4's
    own boxes (moov/trak/mdia: hdlr, mdhd, stsz): a check that needs no ffprobe."""
    with open(path, "rb") as f:
        b = f.read()
    moov = _find(b, 0, len(b), ["moov"])
    if moov is None:
        raise DemoError(f"{path}: not an MP4 file (no moov box)")
    tracks = []
    for kind, s, e in _boxes(b, *moov):
        if kind != "trak":
            continue
        hdlr, mdhd = _find(b, s, e, ["mdia", "hdlr"]), _find(b, s, e, ["mdia", "mdhd"])
        stsz = _find(b, s, e, ["mdia", "minf", "stbl", "stsz"])
        if not (hdlr and mdhd and stsz):
            continue
        m = mdhd[0]
        if b[m] == 1:
            scale, dur = struct.unpack(">IQ", b[m + 20:m + 32])
        else:
            scale, dur = struct.unpack(">II", b[m + 12:m + 20])
        tracks.append({"kind": b[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1"),
                       "samples": struct.unpack(">I", b[stsz[0] + 8:stsz[0] + 12])[0],
                       "seconds": dur / scale if scale else 0.0, "timescale": scale})
    return tracks


def check_mp4(path, n_frames, fps, voices, has_audio=True):
    """The MP4's own boxes: one video stream of n_frames, one audio stream as long; then the audio
    decoded (Blender's audaspace) must be the two voices mixed: returns their gains in the mix."""
    import numpy as np
    import soundfile as sf

    tracks = probe_mp4(path)
    video = [t for t in tracks if t["kind"] == "vide"]
    audio = [t for t in tracks if t["kind"] == "soun"]
    if len(video) != 1 or video[0]["samples"] != n_frames:
        raise DemoError(f"{path}: expected one video stream of {n_frames} frames, found {video}")
    want = n_frames / fps
    if not has_audio:
        return video[0], {"seconds": 0.0}, None
    if len(audio) != 1 or abs(audio[0]["seconds"] - want) > 0.1:
        raise DemoError(f"{path}: expected one audio stream of {want:.2f} s, found {audio}")
    try:
        import aud
    except ImportError:  # a Blender built without audaspace: the stream checks above must do
        return video[0], audio[0], None
    sound = aud.Sound(path)
    rate = sound.specs[0]
    mix = sound.data().mean(axis=1)
    src = [sf.read(v, dtype="float32", always_2d=True) for v in voices]
    t = np.arange(0.0, min([len(mix) / rate] + [len(x) / sr for x, sr in src]), 1 / 8000)
    cols = np.stack([x.mean(axis=1)[(t * sr).astype(int)] for x, sr in src], 1)
    gains = np.linalg.lstsq(cols, mix[(t * rate).astype(int)], rcond=None)[0]
    if gains.min() < 0.2:
        raise DemoError(f"{path}: the audio is not both voices mixed (gains {np.round(gains, 2).tolist()})")
    return video[0], audio[0], gains


# ---------------------------------------------------------------- render, encode

def render_frames(scene, step, frames_dir):
    import bpy

    shutil.rmtree(frames_dir, ignore_errors=True)
    os.makedirs(frames_dir)
    scene.frame_step = step
    r = scene.render
    if hasattr(r.image_settings, "media_type"):  # 5.0
        r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.compression = 15
    r.filepath = os.path.join(frames_dir, "f_")
    total = len(range(scene.frame_start, scene.frame_end + 1, step))
    with frame_progress(total, "render"):
        bpy.ops.render.render(animation=True, scene=scene.name)
    files = sorted(glob.glob(os.path.join(frames_dir, "f_*.png")))
    if len(files) != total:
        raise DemoError(f"rendered {len(files)} frames, expected {total}")
    return files


def encode_preview(files, voices, size, step, out_path):
    """The rendered frames and both voices through the Video Sequencer into one MP4 (H.264 + AAC):
    Blender mixes the sound strips itself, so no ffmpeg binary is needed. Returns False when this
    bpy build has no audio (the PyPI bpy 4.2 module): the video is then silent."""
    import bpy

    sc = bpy.data.scenes.new("Preview encode")
    sc.render.fps, sc.render.fps_base = FPS, float(step)  # 25/step frames per second
    sc.render.resolution_x, sc.render.resolution_y = size
    sc.render.resolution_percentage = 100
    sc.render.use_sequencer = True
    sc.view_settings.view_transform = "Standard"
    se = sc.sequence_editor_create()
    strips = se.strips if hasattr(se, "strips") else se.sequences
    img = strips.new_image("frames", files[0], 1, 1)
    for f in files[1:]:
        img.elements.append(os.path.basename(f))
    has_audio = True
    for ch, v in enumerate(voices, start=2):
        try:
            strips.new_sound(os.path.basename(v), v, ch, 1)
        except RuntimeError as exc:  # "Blender compiled without Audaspace support"
            say(f"      note: no audio in the preview: {str(exc).removeprefix('Error: ').strip()}")
            has_audio = False
            break
    for ch, (name, x) in enumerate(zip(NAMES, LABEL_X), start=4):  # name tags under the heads
        try:
            tag = strips.new_effect(name, "TEXT", ch, 1, frame_end=len(files) + 1)
        except TypeError:  # 5.0: a length instead of an end frame
            tag = strips.new_effect(name, "TEXT", ch, 1, length=len(files))
        tag.text = name
        tag.font_size = max(8, round(size[1] * 0.075))
        tag.location = (x, 0.04)
        if hasattr(tag, "anchor_x"):
            tag.anchor_x, tag.anchor_y = "CENTER", "BOTTOM"
        else:  # 4.2
            tag.align_x, tag.align_y = "CENTER", "BOTTOM"
        tag.color = (1.0, 1.0, 1.0, 1.0)
        tag.use_box, tag.box_color = True, (0.0, 0.0, 0.0, 0.45)
    sc.frame_start, sc.frame_end = 1, len(files)
    r = sc.render
    if hasattr(r.image_settings, "media_type"):  # 5.0: movies are a media type of their own
        r.image_settings.media_type = "VIDEO"
    r.image_settings.file_format = "FFMPEG"
    r.ffmpeg.format = "MPEG4"
    r.ffmpeg.codec = "H264"
    r.ffmpeg.constant_rate_factor = "HIGH"
    r.ffmpeg.ffmpeg_preset = "GOOD"
    r.ffmpeg.gopsize = 25
    r.ffmpeg.audio_codec = "AAC" if has_audio else "NONE"
    r.ffmpeg.audio_bitrate = 128
    r.ffmpeg.audio_mixrate = 48000
    r.ffmpeg.audio_channels = "STEREO"
    r.use_file_extension = False
    tmp = out_path + ".part.mp4"
    r.filepath = tmp
    if os.path.exists(tmp):
        os.remove(tmp)
    with frame_progress(len(files), "encode", parts=3):
        bpy.ops.render.render(animation=True, scene=sc.name)
    os.replace(tmp, out_path)
    return has_audio


# ---------------------------------------------------------------- pictures

def pick_moments(segments, jaw, times, count):
    """Moments for the contact sheet: [(time, frame index, label, colour, line key)].

    For each character, count/2 of its longest turns; in each, the rendered frame near the middle
    where that character's jaw is most open. A clip with fewer turns is filled with evenly spread
    moments, labelled with whoever speaks then."""
    import numpy as np

    picks = []
    for ci, name in enumerate(NAMES):
        segs = sorted((s for s in segments[name] if s[1] - s[0] >= 0.6), key=lambda s: s[0] - s[1])
        for a, b in sorted(segs[:count // 2]):
            mid, half = (a + b) / 2, (b - a) * 0.3
            idx = np.flatnonzero((times >= mid - half) & (times <= mid + half))
            if len(idx) == 0:
                idx = [int(np.argmin(abs(times - mid)))]
            i = int(max(idx, key=lambda k: jaw[name][k]))
            picks.append((float(times[i]), i, f"{name} speaking", COLOURS[ci], (name, round(a, 3))))
    used = {p[1] for p in picks}
    for t in np.linspace(times[0], times[-1], count + 2)[1:-1]:
        i = int(np.argmin(abs(times - t)))
        if len(picks) >= count or i in used:
            continue
        used.add(i)
        who = [n for n in NAMES if any(a <= times[i] < b for a, b in segments[n])]
        label = f"{who[0]} speaking" if len(who) == 1 else "both speaking" if who else "pause"
        colour = COLOURS[NAMES.index(who[0])] if len(who) == 1 else "#444444"
        picks.append((float(times[i]), i, label, colour, None))
    return sorted(picks)


def contact_sheet(files, picks, lines, size, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    w, h = size
    cols, rows, pad = SHEET_COLS, SHEET_ROWS, SHEET_PAD
    title = int(round(h * SHEET_TITLE))
    W, H = cols * w + (cols + 1) * pad, rows * (h + title) + (rows + 1) * pad
    dpi = 100
    fig = plt.figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor="white")
    fs = max(5.0, title * 0.42 * 72 / dpi)
    for k, (t, i, label, colour, line) in enumerate(picks[:cols * rows]):
        r, c = divmod(k, cols)
        x0 = pad + c * (w + pad)
        y0 = H - (pad + r * (h + title + pad) + title + h)  # from the bottom, in pixels
        ax = fig.add_axes((x0 / W, y0 / H, w / W, h / H))
        ax.imshow(mpimg.imread(files[i]), interpolation="nearest")
        ax.set_axis_off()
        m, s = divmod(t, 60)
        fig.text(x0 / W, (y0 + h + title * 0.18) / H, f"{int(m)}:{s:04.1f}  {label}",
                 fontsize=fs, color=colour, weight="bold", ha="left", va="bottom")
        text = lines.get(line, "")
        if text:  # the line being said, as a subtitle
            sub = fs * 0.8
            chars = max(10, int(w * 0.92 / (sub * 0.5 * dpi / 72)))
            fig.text((x0 + w / 2) / W, (y0 + h * 0.03) / H, textwrap.fill(text, chars, max_lines=2, placeholder="…"),
                     fontsize=sub, color="white", ha="center", va="bottom", linespacing=1.1,
                     bbox=dict(facecolor="black", alpha=0.55, edgecolor="none", boxstyle="round,pad=0.25"))
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return W, H


def plot_curves(curves, times, segments, path, source):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dpi = 100
    fig, axes = plt.subplots(6, 1, figsize=(CURVES_SIZE[0] / dpi, CURVES_SIZE[1] / dpi), dpi=dpi,
                             sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1.6] * 2, "hspace": 0.35})
    stats = {}
    for ci, name in enumerate(NAMES):
        c = curves[name]
        other = NAMES[1 - ci]
        own_mask = _mask(segments[name], times)
        jaw = c.get("jawOpen", np.zeros_like(times))
        speak = float(jaw[own_mask].mean()) if own_mask.any() else float("nan")
        listen = float(jaw[~own_mask].mean()) if (~own_mask).any() else float("nan")
        stats[name] = (speak, listen)
        mouth = np.mean([c[k] for k in ("mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker")
                         if k in c] or [np.zeros_like(times)], axis=0)
        blink = np.mean([c[k] for k in ("eyeBlinkLeft", "eyeBlinkRight") if k in c] or [np.zeros_like(times)],
                        axis=0)
        rest = TURN if ci == 0 else -TURN
        yaw = np.degrees(c.get("rot2", np.full_like(times, rest)) - rest)
        pitch = np.degrees(c.get("rot0", np.zeros_like(times)))
        roll = np.degrees(c.get("rot1", np.zeros_like(times)))
        a_mouth, a_blink, a_head = axes[3 * ci:3 * ci + 3]
        for ax in (a_mouth, a_blink, a_head):
            for s, e in segments[name]:
                ax.axvspan(s, e, color=COLOURS[ci], alpha=0.18, lw=0)
            for s, e in segments[other]:
                ax.axvspan(s, e, color="#888888", alpha=0.12, lw=0)
            ax.grid(alpha=0.3)
            ax.margins(x=0)
        a_mouth.plot(times, jaw, color=COLOURS[ci], lw=1.4, label="jawOpen")
        a_mouth.plot(times, mouth, color="#333333", lw=1.0, ls="--", label="mouth (smile/funnel/pucker mean)")
        a_mouth.set_ylim(0, max(0.3, float(jaw.max()) * 1.1))
        a_mouth.set_title(f"{name}: mouth — jawOpen mean {_num(speak)} while {name} speaks, {_num(listen)} "
                          f"otherwise  (shaded: {name} speaks; grey: {other} speaks)", fontsize=10, loc="left")
        a_mouth.legend(loc="upper right", fontsize=8, framealpha=0.8)
        a_blink.plot(times, blink, color="#4060a0", lw=1.0)
        a_blink.set_ylim(0, 1.05)
        a_blink.set_title(f"{name}: blink (eyeBlink mean)", fontsize=10, loc="left")
        for v, lab, col in ((yaw, "yaw", "#c04000"), (pitch, "pitch", "#0060c0"), (roll, "roll", "#609000")):
            a_head.plot(times, v, lw=1.0, label=lab, color=col)
        a_head.set_ylabel("degrees", fontsize=8)
        a_head.set_title(f"{name}: head (object rotation from rest)", fontsize=10, loc="left")
        a_head.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.8)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(f"Duet demo: curves read back from demo.blend (shaded speech: {source})", fontsize=12)
    fig.subplots_adjust(left=0.05, right=0.985, top=0.94, bottom=0.05)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return stats


def _num(x):
    return "n/a" if x != x else f"{x:.2f}"


def _mask(segments, times):
    import numpy as np

    m = np.zeros(len(times), bool)
    for s, e in segments:
        m |= (times >= s) & (times < e)
    return m


# ---------------------------------------------------------------- main

def main(argv):
    args = parse(argv)
    out_dir = os.path.abspath(args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"demo{k}") for k in (".blend", ".glb", ".fbx", ".mp4", ".png", "_curves.png")}
    step = max(1, round(FPS / args.preview_fps))
    pfps = FPS / step
    log = os.path.join(work, "blender.log")
    open(log, "wb").close()
    with blender_output_to(log):  # what Blender prints (per-frame lines, exporters' chatter) goes here
        return _main(args, out_dir, work, paths, step, pfps, log)


def _main(args, out_dir, work, paths, step, pfps, log):
    steps = Steps(8)

    import bpy
    import duet_load
    import numpy as np

    bpy.ops.wm.read_factory_settings(use_empty=True)
    duet_load.enable()
    from duet.addon import export

    with steps("voices"):
        if args.model and not os.path.isfile(args.model):
            raise BadInputError(f"{args.model}: model file not found")
        sample, srcs, voices, samples, seconds = prepare_voices(args, os.path.join(out_dir, "audio"))
        n_frames = int(math.ceil(seconds * FPS - 1e-9))
        say(f"      Alex speaks {srcs[0]}\n      Sam speaks  {srcs[1]}\n"
            f"      {seconds:.1f} s -> {n_frames} frames at {FPS} fps")

    with steps("scene: two demo heads, camera, Workbench"):
        heads = build_scene(args.size)
        say(f"      {', '.join(h.name for h in heads)}; {args.size[0]}x{args.size[1]}")

    with steps("animate (the Duet extension + runtime process, conversation mode)"):
        animate(args, heads, voices)
        sc = bpy.context.scene
        if sc.frame_end - sc.frame_start + 1 != n_frames:
            raise DemoError(f"the scene has {sc.frame_end - sc.frame_start + 1} frames, expected {n_frames}")

    with steps("save .blend, export .glb and .fbx"):
        check_frames = sorted({int(f) for f in np.linspace(1, n_frames, 7).round()})
        expect = sample_scene(heads, check_frames)
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)
        for snd in bpy.data.sounds:  # '//audio/alex.wav': the folder can move with its .blend
            snd.filepath = bpy.path.relpath(snd.filepath, start=out_dir)
        bpy.ops.wm.save_as_mainfile(filepath=paths[".blend"])
        export.export_gltf(bpy.context, paths[".glb"], heads)
        export.export_fbx(bpy.context, paths[".fbx"], heads)
        for k in (".blend", ".glb", ".fbx"):
            say(f"      {paths[k]}  ({os.path.getsize(paths[k]) / 1e6:.1f} MB)")

    with steps("check: re-import .glb and .fbx into empty scenes"):
        check_reimport("glb", paths[".glb"], expect, n_frames)
        check_reimport("fbx", paths[".fbx"], expect, n_frames)

    # Everything from here on works from the saved file: what the artist opens.
    bpy.ops.wm.open_mainfile(filepath=paths[".blend"], load_ui=False)
    scene = bpy.context.scene
    heads = [bpy.data.objects[n] for n in NAMES]
    frames = np.arange(scene.frame_start, scene.frame_end + 1)
    times = (frames - scene.frame_start) / FPS
    curves = {h.name: read_curves(h, frames) for h in heads}
    if sample:
        segments, lines = speaking_segments_sample(seconds)
        source = "assets/sample/timeline.json"
    else:
        segments, lines = speaking_segments_vad(samples, seconds), {}
        source = "energy voice activity of each track"

    with steps(f"render the preview ({len(range(1, n_frames + 1, step))} frames at {pfps:g} fps, "
               f"{args.size[0]}x{args.size[1]})"):
        files = render_frames(scene, step, os.path.join(work, "frames"))

    with steps("encode demo.mp4 (H.264 + both voices, AAC) and check it"):
        has_audio = encode_preview(files, voices, args.size, step, paths[".mp4"])
        video, audio, gains = check_mp4(paths[".mp4"], len(files), pfps, voices, has_audio)
        say(f"      {paths['.mp4']}: video {video['samples']} frames ({video['seconds']:.2f} s at {pfps:g} fps),"
            + (f" audio {audio['seconds']:.2f} s" if has_audio else " no audio")
            + ("" if gains is None else f", decoded: Alex and Sam mixed at {gains[0]:.2f} / {gains[1]:.2f}"))

    with steps("contact sheet and curves"):
        rtimes = times[::step]
        jaw = {n: curves[n].get("jawOpen", np.zeros_like(times))[::step] for n in NAMES}
        picks = pick_moments(segments, jaw, rtimes, SHEET_COLS * SHEET_ROWS)
        sheet = contact_sheet(files, picks, lines, args.size, paths[".png"])
        stats = plot_curves(curves, times, segments, paths["_curves.png"], source)
        say(f"      {paths['.png']}  ({sheet[0]}x{sheet[1]}, {len(picks)} moments)")
        say(f"      {paths['_curves.png']}  ({CURVES_SIZE[0]}x{CURVES_SIZE[1]})")
        for n, (sp, li) in stats.items():
            say(f"      {n}: jawOpen mean {_num(sp)} while speaking, {_num(li)} otherwise")

    shutil.rmtree(os.path.join(work, "frames"), ignore_errors=True)
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
