"""Actions across Blender versions: plain (4.2/4.3) and slotted (4.4+, the only kind in 5.0).

Everything that creates, finds or places F-curves goes through here so the rest of the add-on
never asks which version it runs on. 4.2 has only `action.fcurves`; 4.4 added slots, layers,
strips and channelbags (`action.fcurves` a proxy for the first slot); 5.0 removed
`Action.fcurves` and `id_root`. So: `hasattr(action, "slots")` decides, and a slotted action gets
one slot, one layer, one keyframe strip and that slot's channelbag.
"""

import bpy
import numpy as np


def is_slotted(action):
    return hasattr(action, "slots")


def new_action(name, owner):
    """A new action ready to receive F-curves for `owner` (an ID: a shape Key or an Object).

    Returns (action, slot or None, fcurves collection).
    """
    act = bpy.data.actions.new(name)
    if is_slotted(act):
        slot = act.slots.new(id_type=owner.id_type, name=owner.name)
        layer = act.layers.new("Layer")
        strip = layer.strips.new(type="KEYFRAME")
        return act, slot, strip.channelbag(slot, ensure=True).fcurves
    act.id_root = owner.id_type
    return act, None, act.fcurves


def action_fcurves(action, slot=None):
    """The F-curves of `action` for `slot` (first slot when None); [] when there are none."""
    if action is None:
        return []
    if not is_slotted(action):
        return list(action.fcurves)
    if slot is None:
        if not len(action.slots):
            return []
        slot = action.slots[0]
    for layer in action.layers:
        for strip in layer.strips:
            cb = strip.channelbag(slot)
            if cb is not None:
                return list(cb.fcurves)
    return []


def write_fcurve(fcurves, data_path, index, frames, values, interpolation=None):
    """One F-curve filled in bulk: keyframe_points.add + foreach_set (hundreds of times faster than
    keyframe_insert). Returns the F-curve."""
    fc = fcurves.new(data_path, index=index)
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fc.keyframe_points.foreach_set("co", co)
    if interpolation is not None:
        fc.keyframe_points.foreach_set("interpolation", np.full(n, interpolation, dtype=np.int32))
    fc.update()
    return fc


def _assign(ad, action, slot):
    ad.action = action
    if slot is not None and hasattr(ad, "action_slot"):
        ad.action_slot = slot


def place_action(owner, action, slot, mode, start_frame, tx, track_name="Duet"):
    """Put `action` on `owner` as an NLA strip (mode 'NLA') or as its active action ('ACTIVE').

    The artist's current active action is never lost: in 'ACTIVE' mode it is stashed in a muted NLA
    track (what Blender itself does when switching actions). Every change registers its undo in `tx`.
    Returns notes for the artist.
    """
    notes = []
    ad = owner.animation_data
    if ad is None:
        ad = owner.animation_data_create()
        tx.on_undo(owner.animation_data_clear)
    if mode == "NLA":
        track = ad.nla_tracks.new()
        track.name = track_name
        tx.on_undo(lambda: ad.nla_tracks.remove(track))
        strip = track.strips.new(action.name, int(round(start_frame)), action)
        if slot is not None and hasattr(strip, "action_slot"):
            strip.action_slot = slot
        if ad.action is not None:
            notes.append(f"'{owner.name}' has an active action '{ad.action.name}' that plays over the "
                         f"Duet NLA strip")
        return notes
    old_action, old_slot = ad.action, getattr(ad, "action_slot", None)
    if old_action is not None:
        stash = ad.nla_tracks.new()
        stash.name = f"[Stash] {old_action.name}"
        stash.mute = True
        tx.on_undo(lambda: ad.nla_tracks.remove(stash))
        s = stash.strips.new(old_action.name, int(old_action.frame_range[0]), old_action)
        if old_slot is not None and hasattr(s, "action_slot"):
            s.action_slot = old_slot
        notes.append(f"previous action '{old_action.name}' kept in muted NLA track '{stash.name}'")
    tx.on_undo(lambda: _assign(ad, old_action, old_slot))
    _assign(ad, action, slot)
    return notes
