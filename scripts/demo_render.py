"""The demo's preview: Workbench frames of the saved scene, encoded with every voice into demo.mp4 by
Blender itself (Video Sequencer, its own FFmpeg and audio mixer), then read back by PyAV's FFmpeg."""

import glob
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field

import av
import bpy
import numpy as np
import soundfile as sf
from demo_common import FPS, NAMES, DemoError, say

LABEL_X = (0.27, 0.73)    # the two-person demo's name tags under the heads, fraction of the width
LABEL_Y = 0.04            # their bottom edge, fraction of the height
MIX_RATE = 48000          # the preview's audio


@contextmanager
def frame_progress(total, label, parts=10):
    """Print 'label: frame i/total' `parts` times while Blender renders (a render_post handler)."""
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


def render_frames(scene, step, frames_dir):
    """Every step-th frame of the scene as a PNG; returns the files in order."""
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


def encode_preview(files, voices, size, step, out_path, tags=None):
    """The rendered frames and every voice through the Video Sequencer into one MP4 (H.264 + AAC):
    Blender mixes the sound strips itself, so no ffmpeg binary is needed. `tags`: {name: (x, y)},
    where each name goes (fractions of the frame, y from the bottom; default: the two-person demo's,
    under the heads). Returns False when this bpy build has no audio (the PyPI bpy 4.2 module):
    the video is then silent."""
    from duet.addon.scene import strips_collection_name

    sc = bpy.data.scenes.new("Preview encode")
    sc.render.fps, sc.render.fps_base = FPS, float(step)  # 25/step frames per second
    sc.render.resolution_x, sc.render.resolution_y = size
    sc.render.resolution_percentage = 100
    sc.render.use_sequencer = True
    sc.view_settings.view_transform = "Standard"
    se = sc.sequence_editor_create()
    strips = getattr(se, strips_collection_name(se))
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
    tags = tags or {n: (x, LABEL_Y) for n, x in zip(NAMES, LABEL_X)}
    for ch, (name, xy) in enumerate(tags.items(), start=len(voices) + 2):
        _name_tag(strips, ch, name, xy, len(files), size)
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
    r.ffmpeg.audio_mixrate = MIX_RATE
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


def _name_tag(strips, channel, name, xy, n_frames, size):
    """A white name on a dark box, its bottom edge centred at xy (fractions of the frame)."""
    try:
        tag = strips.new_effect(name, "TEXT", channel, 1, frame_end=n_frames + 1)
    except TypeError:  # 5.0: a length instead of an end frame
        tag = strips.new_effect(name, "TEXT", channel, 1, length=n_frames)
    tag.text = name
    tag.font_size = max(8, round(size[1] * 0.075))
    tag.location = xy
    if hasattr(tag, "anchor_x"):
        tag.anchor_x, tag.anchor_y = "CENTER", "BOTTOM"
    else:  # 4.2
        tag.align_x, tag.align_y = "CENTER", "BOTTOM"
    tag.color = (1.0, 1.0, 1.0, 1.0)
    tag.use_box, tag.box_color = True, (0.0, 0.0, 0.0, 0.45)


# ---------------------------------------------------------------- reading the MP4 back

@dataclass
class Mp4:
    """What an MP4 holds, as FFmpeg (PyAV) reads it."""
    video: list = field(default_factory=list)   # per stream: {"codec", "size": (w, h), "frames", "seconds"}
    audio: list = field(default_factory=list)   # per stream: {"codec", "rate", "channels", "seconds"}
    mix: np.ndarray = None                      # the first audio stream decoded, channels averaged
    rate: int = 0                               # its sample rate


def read_mp4(path):
    """Every stream of `path`: video frames counted packet by packet, audio decoded in full (its
    seconds are the samples decoded)."""
    out = Mp4()
    decoded = {}
    try:
        with av.open(os.fspath(path)) as c:
            for s in c.streams.video:
                cc = s.codec_context
                out.video.append({"codec": cc.name, "size": (cc.width, cc.height), "frames": 0,
                                  "seconds": float(s.duration * s.time_base) if s.duration else 0.0})
            for s in c.streams.audio:
                cc = s.codec_context
                out.audio.append({"codec": cc.name, "rate": cc.sample_rate, "channels": cc.channels, "seconds": 0.0})
                decoded[s.index] = []
            video = [s.index for s in c.streams.video]
            for packet in c.demux():
                if packet.stream.type == "video" and packet.size:
                    out.video[video.index(packet.stream.index)]["frames"] += 1
                elif packet.stream.index in decoded:  # the last, empty packet flushes the decoder
                    decoded[packet.stream.index] += [_channels_by_samples(f) for f in packet.decode()]
    except av.error.FFmpegError as exc:
        raise DemoError(f"{path}: FFmpeg cannot read it ({exc})")
    for a, parts in zip(out.audio, decoded.values()):
        a["seconds"] = sum(p.shape[1] for p in parts) / a["rate"]
    if out.audio:
        first = next(iter(decoded.values()))
        out.mix = np.concatenate(first, axis=1).mean(axis=0) if first else np.zeros(0, np.float32)
        out.rate = out.audio[0]["rate"]
    return out


def _channels_by_samples(frame):
    a = frame.to_ndarray()
    return a if frame.format.is_planar else a.reshape(-1, len(frame.layout.channels)).T


def mix_gains(mp4, voices):
    """How loud each voice file is in the MP4's audio: least squares of the decoded mix on the
    voices (read at 8 kHz); each clearly above 0 means each voice was mixed in."""
    src = [sf.read(v, dtype="float32", always_2d=True) for v in voices]
    t = np.arange(0.0, min([len(mp4.mix) / mp4.rate] + [len(x) / sr for x, sr in src]), 1 / 8000)
    cols = np.stack([x.mean(axis=1)[(t * sr).astype(int)] for x, sr in src], 1)
    return np.linalg.lstsq(cols, mp4.mix[(t * mp4.rate).astype(int)], rcond=None)[0]


def check_mp4(path, n_frames, fps, size, voices, has_audio=True):
    """One H.264 video stream of n_frames at `size`; one AAC audio stream as long, which must be
    every voice mixed. Returns the Mp4 and the voices' gains in the mix (None when silent)."""
    mp4 = read_mp4(path)
    v = mp4.video
    if len(v) != 1 or (v[0]["codec"], v[0]["frames"], v[0]["size"]) != ("h264", n_frames, tuple(size)):
        raise DemoError(f"{path}: expected one H.264 video stream of {n_frames} frames at {size[0]}x{size[1]}, "
                        f"found {v}")
    if not has_audio:
        if mp4.audio:
            raise DemoError(f"{path}: expected no audio, found {mp4.audio}")
        return mp4, None
    seconds = n_frames / fps
    a = mp4.audio
    if len(a) != 1 or a[0]["codec"] != "aac" or abs(a[0]["seconds"] - seconds) > 0.1:
        raise DemoError(f"{path}: expected one AAC audio stream of {seconds:.2f} s, found {a}")
    gains = mix_gains(mp4, voices)
    if gains.min() < 0.2:
        raise DemoError(f"{path}: the audio is not every voice mixed (gains {np.round(gains, 2).tolist()})")
    return mp4, gains
