"""Live Link Face CSV in and out, through the runtime's numpy-only motion_io (never torch)."""

import os

import numpy as np

from ..model_runtime.channels import CHANNELS
from ..model_runtime.motion_io import read_motion, write_llf_csv
from ..model_runtime.timebase import frame_count
from .scene import sample_shape_keys, scene_fps
from .validate import character_problem
from .writer import Transaction, WriteOptions, write_character


def import_csv(scene, obj, path, start_frame=1, output_mode="ACTIVE", preset="AUTO", head_target="NONE",
               head_object=None, head_bone=""):
    """A capture onto the character's shape keys as a new action (resampled to the scene's rate).

    Raises the runtime's BadInput (one line naming the file) or ValueError; the scene is then unchanged.
    """
    _check(obj)
    motion = read_motion(path)
    fps = scene_fps(scene)
    weights = motion.resampled(fps, frame_count(motion.duration, fps))
    opts = WriteOptions(start_frame=start_frame, output_mode=output_mode, preset=preset,
                        head_target=head_target, head_object=head_object or obj, head_bone=head_bone,
                        action_name=f"LLF {os.path.splitext(os.path.basename(path))[0]}")
    with Transaction() as tx:
        rep = write_character(scene, obj, CHANNELS, weights, opts, tx)
    if motion.missing:
        rep.notes.append(f"{len(motion.missing)} channels missing from the file")
    return rep


def export_csv(scene, obj, path, frame_start=None, frame_end=None, preset="AUTO"):
    """The character's shape-key animation (active action or top NLA strips) over the frame range,
    one row per scene frame. Returns the number of rows; ValueError if `obj` has no shape keys."""
    _check(obj)
    a = scene.frame_start if frame_start is None else frame_start
    b = scene.frame_end if frame_end is None else frame_end
    frames = np.arange(a, b + 1, dtype=np.float64)
    weights, _missing = sample_shape_keys(obj, frames, preset)
    write_llf_csv(path, weights, scene_fps(scene), CHANNELS)
    return len(frames)


def _check(obj):
    if (why := character_problem(obj, f"'{obj.name}'" if obj is not None else "Character")) is not None:
        raise ValueError(why)
