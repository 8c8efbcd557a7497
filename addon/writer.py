"""The keyframe writer: result curves -> a new action on the character's shape keys (and head).

All or nothing: every change registers how to undo itself in a Transaction, and any failure
rolls the scene back to exactly what it was, so a failed job never costs the artist anything.
"""

from dataclasses import dataclass, field

import bpy
import numpy as np

from ..model_runtime.channels import ARKIT_NAMES, HEAD_NAMES
from ..model_runtime.timebase import resample_curves
from . import animdata, overrides
from .curves import reduce_keys
from .scene import resolve_mapping, scene_fps
from .validate import character_problem, linked_problem

LINEAR = 1  # Keyframe.interpolation enum index (CONSTANT, LINEAR, BEZIER)


class Transaction:
    """Collects undo callables; rolls them back in reverse order if the block raises."""

    def __init__(self):
        self._undo = []

    def on_undo(self, fn):
        self._undo.append(fn)

    def rollback(self):
        while self._undo:
            fn = self._undo.pop()
            try:
                fn()
            except Exception as exc:  # keep undoing the rest: partial rollback beats none
                print(f"Duet: rollback step failed: {exc}")

    def commit(self):
        self._undo.clear()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.rollback()
        else:
            self.commit()
        return False


@dataclass
class WriteOptions:
    start_frame: float = 1.0
    output_mode: str = "NLA"  # 'NLA' strip or 'ACTIVE' action
    reduce_tolerance: float = 0.0  # 0: a key on every frame
    head_target: str = "NONE"  # 'NONE' | 'OBJECT' | 'BONE'
    head_object: object = None  # the object (OBJECT) or armature (BONE); None: the character
    head_bone: str = ""
    preset: str = "AUTO"
    action_name: str = ""


@dataclass
class WriteReport:
    action: object = None
    head_action: object = None
    channels: list = field(default_factory=list)  # ARKit channels written
    unmatched: list = field(default_factory=list)
    frames: int = 0
    keys: int = 0
    notes: list = field(default_factory=list)


def to_scene_rate(weights, fps, scene):
    """Curves resampled to the scene's frame rate when they came at another one."""
    target = scene_fps(scene)
    if abs(fps - target) < 1e-4:
        return np.asarray(weights, dtype=np.float32)
    return resample_curves(weights, fps, target)


def _keys(fcurves, path, index, frames, values, tol):
    if tol > 0:
        idx = reduce_keys(values, tol)
        animdata.write_fcurve(fcurves, path, index, frames[idx], values[idx], LINEAR)
        return len(idx)
    animdata.write_fcurve(fcurves, path, index, frames, values)
    return len(frames)


def write_character(scene, obj, names, weights, opts, tx):
    """Write (T, C) curves named `names` (already at the scene's rate) onto `obj`. Returns a WriteReport.

    Refuses (ValueError, nothing written) what would not be saved: a linked character or head.
    """
    rep = WriteReport()
    if (why := character_problem(obj, f"'{obj.name}'")) is not None:
        raise ValueError(why)
    head_owner = (opts.head_object or obj) if opts.head_target != "NONE" else None
    for idb, what in ((obj, "Character"), (head_owner, "Head motion")):
        if (why := linked_problem(idb, what)) is not None:
            raise ValueError(why)
    if (note := overrides.ensure_saved_shape_keys(obj, tx)) is not None:
        rep.notes.append(note)
    key = obj.data.shape_keys  # after the line above: it may be the override's
    weights = np.asarray(weights, dtype=np.float32)
    col = {n: j for j, n in enumerate(names)}
    res = resolve_mapping(obj, opts.preset)
    rep.unmatched = res.unmatched
    t = len(weights)
    rep.frames = t
    frames = opts.start_frame + np.arange(t, dtype=np.float64)

    act, slot, fcurves = animdata.new_action(opts.action_name or f"Duet {obj.name}", key)
    tx.on_undo(lambda: bpy.data.actions.remove(act))
    act.use_fake_user = False
    for ch in ARKIT_NAMES:
        kname = res.mapping.get(ch)
        if kname is None or ch not in col:
            continue
        kb = key.key_blocks[kname]
        vals = np.clip(weights[:, col[ch]], kb.slider_min, kb.slider_max)
        path = f'key_blocks["{bpy.utils.escape_identifier(kname)}"].value'
        rep.keys += _keys(fcurves, path, 0, frames, vals, opts.reduce_tolerance)
        rep.channels.append(ch)
    if not rep.channels:
        raise ValueError(f"none of '{obj.name}''s shape keys match an ARKit name; see Duet > Mapping")
    rep.action = act
    overrides.make_editable(key, tx)
    rep.notes += animdata.place_action(key, act, slot, opts.output_mode, opts.start_frame, tx)

    if opts.head_target != "NONE" and all(h in col for h in HEAD_NAMES):
        head = np.stack([weights[:, col[h]] for h in HEAD_NAMES], axis=1)  # yaw, pitch, roll
        rep.head_action, k, notes = _write_head(obj, head, frames, opts, tx)
        rep.keys += k
        rep.notes += notes
    # Never report keys that saving would drop: the checks above should make this unreachable.
    written = [key] + ([opts.head_object or obj] if rep.head_action is not None else [])
    if (why := overrides.unsaved_problem(written)) is not None:
        raise ValueError(why)
    return rep


def _euler_curves(yaw, pitch, roll, bone):
    # Objects face -Y with Z up: yaw turns about Z, pitch about X, roll about Y. A bone's own Y axis
    # runs along the neck, so there yaw turns about Y and roll about Z.
    return (pitch, yaw, roll) if bone else (pitch, roll, yaw)


def _write_head(obj, head, frames, opts, tx):
    from mathutils import Euler, Quaternion

    notes = []
    bone = opts.head_target == "BONE"
    target = opts.head_object or obj
    if bone:
        if target.type != "ARMATURE" or opts.head_bone not in target.pose.bones:
            raise ValueError(f"head bone '{opts.head_bone}' not found on '{target.name}'")
        pb = target.pose.bones[opts.head_bone]
        prefix = f'pose.bones["{bpy.utils.escape_identifier(pb.name)}"].'
        mode, base_e, base_q = pb.rotation_mode, Euler((0, 0, 0)), Quaternion()
    else:
        prefix, pb = "", target
        mode = target.rotation_mode
        base_e = target.rotation_euler.copy()
        base_q = target.rotation_quaternion.copy()
    if mode == "AXIS_ANGLE":
        return None, 0, [f"head motion skipped: '{target.name}' uses axis-angle rotation"]
    x, y, z = _euler_curves(head[:, 0], head[:, 1], head[:, 2], bone)
    overrides.make_editable(target, tx)
    act, slot, fcurves = animdata.new_action(f"Duet head {obj.name}", target)
    tx.on_undo(lambda: bpy.data.actions.remove(act))
    keys = 0
    if mode == "QUATERNION":
        q = np.empty((len(frames), 4), dtype=np.float32)
        for i in range(len(frames)):  # mathutils per frame: tens of ms for 18k frames
            q[i] = base_q @ Euler((float(x[i]), float(y[i]), float(z[i]))).to_quaternion()
        for c in range(4):
            keys += _keys(fcurves, prefix + "rotation_quaternion", c, frames, q[:, c],
                          opts.reduce_tolerance)
    else:
        for c, v in enumerate((x, y, z)):
            keys += _keys(fcurves, prefix + "rotation_euler", c, frames, base_e[c] + v,
                          opts.reduce_tolerance)
    notes += animdata.place_action(target, act, slot, opts.output_mode, opts.start_frame, tx,
                                   track_name="Duet head")
    return act, keys, notes

