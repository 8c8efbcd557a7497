"""Scene helpers: frame rate, sound strips, frame range, shape-key lookup and sampling (bpy)."""

import os

import bpy
import numpy as np

from ..model_runtime.channels import ARKIT_NAMES, CHANNELS, index_of
from . import animdata
from .mapping import match_shape_keys


def scene_fps(scene):
    """Frames per second as Blender plays them (fps_base included: 30000/1001 -> 29.97)."""
    return scene.render.fps / scene.render.fps_base


def shape_key_names(obj):
    """The character's shape keys, the reference (Basis) key left out."""
    key = getattr(obj.data, "shape_keys", None) if obj is not None else None
    if key is None:
        return []
    ref = key.reference_key
    return [kb.name for kb in key.key_blocks if kb != ref]


def mapping_table(obj):
    """The artist's edited table ({channel: key, '' = unmapped}) or None when never filled."""
    items = getattr(obj, "duet_map", None)
    if not items:
        return None
    return {it.channel: it.shape_key for it in items}


def resolve_mapping(obj, preset="AUTO"):
    return match_shape_keys(shape_key_names(obj), preset=preset, table=mapping_table(obj))


def fill_mapping_table(obj, preset="AUTO"):
    """(Re)build the object's editable table from the automatic matching."""
    res = match_shape_keys(shape_key_names(obj), preset=preset)
    obj.duet_map.clear()
    for ch in ARKIT_NAMES:
        it = obj.duet_map.add()
        it.channel = ch
        it.shape_key = res.mapping.get(ch, "")
    return res


def strips_collection_name(se):
    # 4.4 renamed VSE "sequences" to "strips"; 5.0 dropped the old name.
    return "strips" if hasattr(se, "strips") else "sequences"


def _strips(se):
    return getattr(se, strips_collection_name(se))


def unmapped_channels(obj):
    """ARKit channels the object's edited table leaves without a shape key."""
    return [it.channel for it in obj.duet_map if not it.shape_key]


def add_sound_strips(scene, paths, start_frame, tx):
    """One sound strip per voice at start_frame, on free channels; reused when already there."""
    notes = []
    se = scene.sequence_editor
    if se is None:
        se = scene.sequence_editor_create()
        tx.on_undo(scene.sequence_editor_clear)
    strips = _strips(se)
    start = int(round(start_frame))
    for path in paths:
        if not path:
            continue
        absp = os.path.normpath(bpy.path.abspath(path))
        if any(getattr(s, "sound", None) is not None and s.frame_start == start
               and os.path.normpath(bpy.path.abspath(s.sound.filepath)) == absp for s in strips):
            continue
        if not os.path.isfile(absp):  # moved or deleted while the runtime worked: the keys are still good
            notes.append(f"no sound strip for {os.path.basename(absp)}: the file is gone ({absp})")
            continue
        channel = 1 + max([s.channel for s in strips] or [0])
        n_sounds = set(bpy.data.sounds)
        try:
            strip = strips.new_sound(os.path.basename(absp), absp, channel, start)
        except (RuntimeError, TypeError) as exc:  # e.g. a build without audio support
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            notes.append(f"no sound strip for {os.path.basename(absp)} ({why.removeprefix('Error: ')})")
            continue
        sound = strip.sound
        created_sound = sound not in n_sounds

        def undo(strip=strip, sound=sound, created_sound=created_sound):
            strips.remove(strip)
            if created_sound and sound.users == 0:
                bpy.data.sounds.remove(sound)
        tx.on_undo(undo)
    return notes


def driven_shape_keys(obj, key_names):
    """Those of `key_names` whose value an unmuted driver sets (in `key_names` order)."""
    key = getattr(obj.data, "shape_keys", None)
    ad = key.animation_data if key is not None else None
    if ad is None:
        return []
    paths = {fc.data_path for fc in ad.drivers if not fc.mute}
    return [k for k in key_names if f'key_blocks["{bpy.utils.escape_identifier(k)}"].value' in paths]


def set_frame_range(scene, start, end, tx):
    old = (scene.frame_start, scene.frame_end)

    def undo():
        scene.frame_start, scene.frame_end = old
    tx.on_undo(undo)
    scene.frame_end = max(int(end), scene.frame_start)  # order avoids a transient end < start clamp
    scene.frame_start = int(start)
    scene.frame_end = int(end)


def effective_curves(idb):
    """[(fcurves, frame_offset)] that drive `idb`: its active action, else its topmost unmuted NLA
    strips (strip scale and repeat are ignored)."""
    ad = idb.animation_data
    if ad is None:
        return []
    if ad.action is not None:
        return [(animdata.action_fcurves(ad.action, getattr(ad, "action_slot", None)), 0.0)]
    for track in reversed(ad.nla_tracks):
        if track.mute:
            continue
        out = []
        for s in track.strips:
            if s.action is not None and not s.mute:
                fcs = animdata.action_fcurves(s.action, getattr(s, "action_slot", None))
                out.append((fcs, s.frame_start - s.action_frame_start))
        if out:
            return out
    return []


def sample_shape_keys(obj, frames, preset="AUTO"):
    """(len(frames), 55) float32 of the character's animated ARKit keys at the given scene frames,
    and the list of channels it has no curve for (left at 0)."""
    res = resolve_mapping(obj, preset)
    key = obj.data.shape_keys
    out = np.zeros((len(frames), len(CHANNELS)), dtype=np.float32)
    if key is None:
        return out, list(CHANNELS)
    by_path = {}
    for fcs, offset in effective_curves(key):
        for fc in fcs:
            by_path.setdefault(fc.data_path, []).append((fc, offset))
    found = set()
    cols = dict(zip(res.mapping, index_of(res.mapping)))
    for ch, kname in res.mapping.items():
        col = cols[ch]
        path = f'key_blocks["{bpy.utils.escape_identifier(kname)}"].value'
        if path not in by_path:
            # Not animated: the key's static value holds for every frame.
            out[:, col] = key.key_blocks[kname].value
            continue
        for fc, offset in by_path[path]:
            lo, hi = fc.range()
            for i, f in enumerate(frames):
                t = f - offset
                if len(by_path[path]) == 1 or lo <= t <= hi:
                    out[i, col] = fc.evaluate(t)
        found.add(ch)
    return out, [c for c in CHANNELS if c not in found]
