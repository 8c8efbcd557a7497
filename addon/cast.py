"""A cast: any number of characters animated together (Scene.duet.cast), each from its own voice,
each turning toward whoever speaks. What keeps a row or the list from being generated (the poll,
the rows' alert icons, the job's start), the plan (one `cast` request and the positions file the
runtime aims heads with), the list's editing, and "Cast from conversation" (bpy).

Per row: character, voice, head target, facing, mute. Everything else (intensities, smoothing,
naming, output, blinks and seed, start frame) is the panel's, for every row.
"""

import json
import math
import os
import shutil

import numpy as np
from mathutils import Vector

from ..model_runtime.request import MAX_CAST, MAX_NAME_CHARS, CastMember, CastRequest, RequestError
from . import validate
from .generate import (
    Choices,
    Target,
    UserError,
    check_fps,
    finish,
    head_problem,
    second_head_target,
    voice_path,
    voice_problem,
)
from .job import Cast, Plan
from .props import FORWARD_AXES

UNDO = "Duet: generate cast"
# Positions are sampled once per frame up to this many frames, then every k-th frame (linearly
# interpolated by the runtime): frame_set costs a scene evaluation each, and an hour at 24 fps
# would hold Blender for minutes while where people stand changes slowly.
MAX_POSITION_SAMPLES = 6000
POSITIONS_VERSION = 1


def _label(n):
    return f"Cast row {n + 1}"


def row_problem(scene, row, n, output_mode):
    """One line on what keeps row `n` (0-based) from being generated, or None. A muted row is only
    heard and looked at: it needs a character and a voice, not keys that saving keeps."""
    obj = row.character
    what = _label(n)
    why = (validate.character_problem(obj, what) if row.mute
           else validate.writable_problem(obj, output_mode, what))
    if why is not None:
        return why
    name = obj.name
    why = voice_problem(row.voice, row.voice_strip, scene, f"{name}'s voice", True)[1]
    if why is not None:
        return why
    head = row.head_object
    if row.head_target == "BONE":  # its world position is where the others look, muted or not
        if head is None or head.type != "ARMATURE":
            return f"{name}'s head: pick the armature that has the head bone"
        if row.head_bone not in head.pose.bones:
            return f"{name}'s head: no bone '{row.head_bone}' in '{head.name}'"
    if row.mute or row.head_target == "NONE":
        return None
    if (why := validate.linked_problem(head, f"{name}'s head motion")) is not None:
        return why
    if (why := head_problem(obj, row.head_target, head, output_mode)) is not None:
        return f"{what}: {why}"
    return None


def _head_key(row):
    """What a row's head keys go onto: (object, bone or None)."""
    obj = row.head_object if row.head_object is not None else row.character
    return obj.as_pointer(), (row.head_bone if row.head_target == "BONE" else None)


def cast_problem(scene):
    """Why the scene's cast cannot be generated now (the first problem, one line), or None."""
    s = scene.duet
    rows = list(s.cast)
    if not rows:
        return "Cast: add a character to the list (the + button)"
    if len(rows) > MAX_CAST:
        return f"Cast: {len(rows)} characters; one cast holds at most {MAX_CAST}"
    for n, row in enumerate(rows):
        if (why := row_problem(scene, row, n, s.output_mode)) is not None:
            return why
    if all(row.mute for row in rows):
        return "Cast: every row is muted: unmute the characters to animate"
    seen, heads = {}, {}
    for n, row in enumerate(rows):
        key = row.character.as_pointer()
        if key in seen:
            return (f"Cast: '{row.character.name}' is in rows {seen[key] + 1} and {n + 1}: "
                    "a character speaks one voice")
        seen[key] = n
        if row.mute or row.head_target == "NONE":
            continue
        key = _head_key(row)
        if key in heads:
            m = heads[key]
            owner = (row.head_object or row.character).name
            what = f"bone '{row.head_bone}' of '{owner}'" if key[1] is not None else f"'{owner}'"
            return (f"Cast: rows {m + 1} and {n + 1} ('{rows[m].character.name}', '{row.character.name}') "
                    f"both turn {what}: give each its own head")
        heads[key] = n
    return None


def generate_reason(context, job=None):
    """The Generate cast button's poll. `job`: the current job (generate.current_job())."""
    if job is not None and job.running:
        return "Duet is already generating"
    return cast_problem(context.scene)


def member_names(objs):
    """The runtime's names for the characters: their object names, with path separators and NUL
    replaced (the command line makes file names of them), cut to MAX_NAME_CHARS, made unique."""
    out = []
    for ob in objs:
        base = "".join("_" if c in "/\\\0" else c for c in ob.name)[:MAX_NAME_CHARS]
        if base in (".", ".."):
            base = "_" * len(base)
        name, k = base, 2
        while name in out:
            suffix = f" {k}"
            name, k = base[:MAX_NAME_CHARS - len(suffix)] + suffix, k + 1
        out.append(name)
    return out


# --- where each member's head is, and where it faces --------------------------------------------

def _moves(ob):
    """Whether `ob` can be somewhere else on another frame: animation, drivers or constraints on it
    or on any of its parents (an armature's bone constraints too)."""
    while ob is not None:
        ad = ob.animation_data
        if ad is not None and (ad.action is not None or len(ad.nla_tracks) or len(ad.drivers)):
            return True
        if len(ob.constraints):
            return True
        if ob.type == "ARMATURE" and ob.pose is not None and any(len(pb.constraints) for pb in ob.pose.bones):
            return True
        ob = ob.parent
    return False


def _involved(rows):
    out = []
    for row in rows:
        for ob in (row.character, row.head_object if row.head_target != "NONE" else None):
            if ob is not None and ob not in out:
                out.append(ob)
    return out


def head_and_forward(depsgraph, row):
    """(world head position, world facing) of a row as the depsgraph has evaluated it: the head
    bone's head, else a separate head object's origin, else the middle of the character's rest
    bounds; the facing is the row's axis turned by the character's world matrix."""
    ob = row.character.evaluated_get(depsgraph)
    m = ob.matrix_world
    axis = Vector(FORWARD_AXES[row.forward_axis])
    forward = m.to_3x3() @ axis  # the scale of a basis axis drops out when normalised
    forward = forward.normalized() if forward.length > 1e-9 else axis  # a zero-scaled character
    head = row.head_object
    if row.head_target == "BONE":
        arm = head.evaluated_get(depsgraph)
        pos = arm.matrix_world @ arm.pose.bones[row.head_bone].head
    elif row.head_target == "OBJECT" and head is not None and head != row.character:
        pos = head.evaluated_get(depsgraph).matrix_world.translation
    else:
        pos = m @ _rest_middle(row.character)
    return pos, forward


def _rest_middle(obj):
    """The middle of the mesh's rest (basis) bounds in its own space. Not `bound_box`: from Blender 5.0
    the evaluated box also spans where the shape keys could move the vertices."""
    verts = obj.data.vertices
    if not len(verts):
        return Vector()
    co = np.empty(len(verts) * 3, np.float64)
    verts.foreach_get("co", co)
    co = co.reshape(-1, 3)
    return Vector((co.min(0) + co.max(0)) / 2)


def _xyz(v):
    return [round(float(c), 6) for c in v]


def sample_positions(context, rows, names, start, fps):
    """The positions file's `characters`: one static entry per member when nothing involved moves,
    else one sample per frame from `start` to the scene's end (at least two frames), times in
    seconds from the start of the audio. The frame is given back exactly as it was."""
    scene = context.scene

    def heads():  # (name, position, facing) of each member on the current frame
        dg = context.evaluated_depsgraph_get()
        return [(name, *map(_xyz, head_and_forward(dg, row))) for name, row in zip(names, rows)]

    if not any(_moves(ob) for ob in _involved(rows)):
        return {name: {"position": pos, "forward": fwd} for name, pos, fwd in heads()}
    end = max(scene.frame_end, start + 1)
    step = max(1, math.ceil((end - start + 1) / MAX_POSITION_SAMPLES))
    frames = list(range(start, end + 1, step))
    if frames[-1] != end:
        frames.append(end)
    out = {name: {"times": [(f - start) / fps for f in frames], "position": [], "forward": []}
           for name in names}
    frame, subframe = scene.frame_current, scene.frame_subframe
    try:
        for f in frames:
            scene.frame_set(f)
            for name, pos, fwd in heads():
                out[name]["position"].append(pos)
                out[name]["forward"].append(fwd)
    finally:
        scene.frame_set(frame, subframe=subframe)
    return out


def write_positions(path, characters):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"version": POSITIONS_VERSION, "characters": characters}, fh, separators=(",", ":"))


# --- the plan -------------------------------------------------------------------------------------

def result_paths(done, targets):
    """Each target's result file, from the cast's `done` event (`outs`: member name -> file)."""
    outs = done.get("outs") or {}
    missing = [t.source for t in targets if t.source not in outs]
    if missing:
        raise ValueError(f"the runtime returned no result for {', '.join(missing)}")
    return [outs[t.source] for t in targets]


def build_plan(context):
    """A Plan of one `cast` request from the scene's Cast list, or UserError naming the row."""
    scene = context.scene
    s = scene.duet
    if (why := cast_problem(scene)) is not None:
        raise UserError(why)
    fps = check_fps(scene)
    rows = list(s.cast)
    start = s.start_frame
    voices = [voice_path(r.voice, r.voice_strip, scene, f"{r.character.name}'s voice", True) for r in rows]
    names = member_names([r.character for r in rows])
    plan = Plan([], fps, None, label="cast", liveliness=s.liveliness, seed=s.seed)
    try:
        positions = os.path.join(plan.work_dir, "positions.json")
        write_positions(positions, sample_positions(context, rows, names, start, fps))
        members = tuple(CastMember(name, voice, None if r.mute else os.path.join(plan.work_dir, f"member{k}.npz"))
                        for k, (name, voice, r) in enumerate(zip(names, voices, rows)))
        request = CastRequest(members, positions=positions, fps=fps, liveliness=s.liveliness,
                              attention=s.cast_attention, seed=s.seed)
    except RequestError as exc:  # the checks above hold the runtime's rules: this names what slipped by
        shutil.rmtree(plan.work_dir, ignore_errors=True)
        raise UserError(f"Cast: {exc}") from None
    except BaseException:
        shutil.rmtree(plan.work_dir, ignore_errors=True)
        raise
    plan.steps = [Cast(request)]
    targets = [Target(r.character.name, _label(k), r.head_target, r.head_object.name if r.head_object else "",
                      r.head_bone, source=name)
               for k, (name, r) in enumerate(zip(names, rows)) if not r.mute]
    muted = [f"{r.character.name}: muted (heard and looked at, not animated)" for r in rows if r.mute]
    choices = Choices.of(s)
    scene_name = scene.name
    plan.finish = lambda results: finish(scene_name, choices, targets, result_paths(results[0], targets),
                                         start, voices, UNDO, muted)
    return plan


# --- editing the list -----------------------------------------------------------------------------

def add_row(context):
    """A new row at the end, made the active one; its character is the active object when that is a
    mesh with shape keys not yet in the cast."""
    s = context.scene.duet
    obj = context.active_object
    taken = {r.character for r in s.cast}
    row = s.cast.add()
    if validate.has_shape_keys(obj) and obj not in taken:
        row.character = obj
    s.cast_index = len(s.cast) - 1
    return row


def remove_row(context):
    s = context.scene.duet
    if 0 <= s.cast_index < len(s.cast):
        s.cast.remove(s.cast_index)
        s.cast_index = min(s.cast_index, len(s.cast) - 1) if len(s.cast) else 0


def move_row(context, delta):
    s = context.scene.duet
    i, j = s.cast_index, s.cast_index + delta
    if 0 <= i < len(s.cast) and 0 <= j < len(s.cast):
        s.cast.move(i, j)
        s.cast_index = j


def row_reason(context):
    """Why there is no row to remove or move, or None."""
    s = context.scene.duet
    return None if 0 <= s.cast_index < len(s.cast) else "Cast: no row selected"


def from_conversation(context):
    """Fill the Cast list from the panel's settings (old files carry over): the character with the
    own voice and the panel's head; in conversation mode also the second character with the partner
    voice, turning its own object as conversation mode does. Returns the number of rows. Its poll:
    validate.character_reason (it needs the panel's character)."""
    s = context.scene.duet
    s.cast.clear()
    row = s.cast.add()
    row.character = validate.character(context)
    row.voice, row.voice_strip = s.self_audio, s.self_strip
    row.head_target = s.head_target  # first: head_object's picker filters on it
    row.head_object, row.head_bone = s.head_object, s.head_bone
    if s.conversation and validate.has_shape_keys(s.character_b) and s.character_b != row.character:
        row = s.cast.add()
        row.character = s.character_b
        row.voice, row.voice_strip = s.partner_audio, s.partner_strip
        row.head_target = second_head_target(s.head_target)
    s.cast_index = 0
    return len(s.cast)


def export_objects(context):
    """What the Cast panel's export buttons write: every row's character and head object."""
    return _involved(context.scene.duet.cast)


def export_reason(context):
    return None if export_objects(context) else "Cast: add a character to the list first"
