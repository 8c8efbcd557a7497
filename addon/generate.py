"""From the panel's settings to a running job, and from its results to keys (bpy).

Runs on the main thread only. `start()` registers a bpy.app.timers callback that calls
`Job.tick()`; the PyPI bpy module never fires it, so tests call tick() (or Job.run()) themselves.
"""

import os
from dataclasses import dataclass

import bpy
import numpy as np

from ..model_runtime.channels import CHANNELS
from ..model_runtime.motion_io import write_npz
from ..model_runtime.request import MAX_FPS, MIN_FPS
from . import curves, runtime, validate
from .job import Job, JobState, Plan, Predict, RuntimeConfig
from .prefs import get_prefs
from .scene import (
    add_sound_strips,
    driven_shape_keys,
    resolve_mapping,
    sample_shape_keys,
    scene_fps,
    set_frame_range,
    strips_collection_name,
)
from .writer import Transaction, WriteOptions, to_scene_rate, write_character

_job = None  # the one job at a time


class UserError(Exception):
    """Something the artist must fix before generating; the message is one line."""


def current_job():
    return _job


def runtime_config(context):
    prefs = get_prefs(context)
    python, why = runtime.find_python(prefs.runtime_python)
    if python is None:
        raise UserError(why)
    model = bpy.path.abspath(prefs.model_path) if prefs.model_path else None
    return RuntimeConfig(python, model or None, prefs.backend, runtime.DEVICES.get(prefs.device, "auto"))


def voice_problem(path, strip_name, scene, what, required):
    """(absolute path or None, one line or None) for a voice given as a file path, or as the name
    of a sound strip already in the Video Sequencer (which wins when both are set)."""
    if strip_name:
        se = scene.sequence_editor
        strips = getattr(se, strips_collection_name(se)) if se else []
        strip = next((s for s in strips if s.name == strip_name), None)
        if strip is None or getattr(strip, "sound", None) is None:
            return None, f"{what}: no sound strip named '{strip_name}'"
        path = strip.sound.filepath
    if not path:
        return None, (f"{what}: choose an audio file" if required else None)
    path = os.path.normpath(bpy.path.abspath(path))
    return path, validate.file_problem(path, what, "an audio file")


def voice_path(path, strip_name, scene, what, required):
    """The voice's absolute path (None when optional and not given), or UserError saying why not."""
    path, why = voice_problem(path, strip_name, scene, what, required)
    if why is not None:
        raise UserError(why)
    return path


def _character(obj, what, output_mode=None):
    why = (validate.character_problem(obj, what) if output_mode is None
           else validate.writable_problem(obj, output_mode, what))
    if why is not None:
        raise UserError(why)
    return obj


def head_problem(obj, head_target, head_object, output_mode):
    """The head's action becomes the active one of the head object (or armature) in 'Active action'
    output, which Blender refuses while that object's NLA is in tweak mode."""
    if head_target == "NONE" or output_mode != "ACTIVE":
        return None
    target = head_object or obj
    if target is not None and validate.in_tweak_mode(target):
        return (f"Head motion: '{target.name}' is in NLA tweak mode: exit tweak mode (Tab in the NLA editor) "
                "or choose another output")
    return None


def second_head_target(head_target):
    """What a conversation's second character turns: its own object, as one rig cannot carry two
    heads (a cast made from a conversation keeps the same rule)."""
    return "OBJECT" if head_target == "BONE" else head_target


def check_fps(scene):
    fps = scene_fps(scene)
    if not MIN_FPS <= fps <= MAX_FPS:  # the runtime's own limits: refuse here, before anything runs
        raise UserError(f"Frame rate: {fps:g} fps (Output Properties > Format); Duet needs "
                        f"{MIN_FPS:g} to {MAX_FPS:g} fps")
    return fps


@dataclass
class Target:
    """One character a finished job writes, and what turns its head. Names, not RNA pointers: those
    held across timer ticks may dangle (a file load frees them), names cannot."""

    obj: str  # the character object's name
    what: str  # how one-line messages name it: "Character", "Second character", "Cast row 2"
    head_target: str = "NONE"  # 'NONE' | 'OBJECT' | 'BONE'
    head_object: str = ""  # the head object's or armature's name; "": the character itself
    head_bone: str = ""
    source: object = 0  # where its curves are in the job's results: a step index, or a cast member's name


@dataclass
class Choices:
    """The panel's settings a job needs at the end, for every character it writes, copied when it
    starts (see Target)."""

    intensity: dict
    smoothing: float
    output_mode: str
    reduce_tolerance: float
    preset: str
    add_sound_strips: bool
    set_frame_range: bool

    @classmethod
    def of(cls, s):
        return cls({"mouth": s.intensity_mouth, "brows": s.intensity_brows, "eyes": s.intensity_eyes,
                    "head": s.intensity_head}, s.smoothing, s.output_mode,
                   s.reduce_tolerance if s.reduce_keys else 0.0, s.mapping_preset,
                   s.add_sound_strips, s.set_frame_range)

    def write_options(self, target, obj, start):
        head_obj = None
        if target.head_target != "NONE" and target.head_object:
            head_obj = bpy.data.objects.get(target.head_object)
            if head_obj is None:
                raise ValueError(f"{target.what}: head object '{target.head_object}' no longer exists")
        return WriteOptions(start_frame=start, output_mode=self.output_mode,
                            reduce_tolerance=self.reduce_tolerance, head_target=target.head_target,
                            head_object=head_obj or obj, head_bone=target.head_bone, preset=self.preset)

    def postprocess(self, names, weights, fps):
        w = curves.apply_intensity(weights, names, self.intensity)
        if self.smoothing > 0:
            w = curves.smooth(w, self.smoothing * fps)  # smoothing is in seconds
        return w


def load_result(path):
    with np.load(path, allow_pickle=False) as z:
        return [str(n) for n in z["names"]], np.asarray(z["weights"], dtype=np.float32), float(z["fps"])


def build_plan(context, settings=None):
    """A Plan from the scene's Duet settings, or UserError naming what is missing."""
    scene = context.scene
    s = settings or scene.duet
    obj = _character(s.character or context.active_object, "Character", s.output_mode)
    if (why := head_problem(obj, s.head_target, s.head_object, s.output_mode)) is not None:
        raise UserError(why)
    fps = check_fps(scene)
    start = s.start_frame
    self_a = voice_path(s.self_audio, s.self_strip, scene, "Own voice", True)
    partner_a = voice_path(s.partner_audio, s.partner_strip, scene, "Partner voice", False)
    partner = None
    if not s.conversation and s.partner_mode == "CHARACTER":
        partner = _character(s.partner_object, "Partner reference")
        if partner == obj:
            raise UserError("Partner reference: pick another character than the one animated")
    head = (s.head_target, s.head_object.name if s.head_object else "", s.head_bone)
    if s.conversation:
        obj_b = _character(s.character_b, "Second character", s.output_mode)
        if (why := head_problem(obj_b, s.head_target, None, s.output_mode)) is not None:
            raise UserError(why)
        if obj_b == obj:
            raise UserError("Conversation: pick two different characters")
        if partner_a is None:
            raise UserError("Conversation: the second character needs its voice (partner voice)")
        # Each uses the other's generated face as its partner reference: A alone, B given A, A given B.
        steps = [Predict(self_a, partner_a, None, f"{obj.name} (draft)"),
                 Predict(partner_a, self_a, 0, obj_b.name, seed_offset=1),
                 Predict(self_a, partner_a, 1, obj.name)]
        head_b = (second_head_target(s.head_target), "", "")
        targets = [Target(obj.name, "Character", *head, source=2),
                   Target(obj_b.name, "Second character", *head_b, source=1)]
    else:
        motion = None
        if s.partner_mode == "CSV":
            if not s.partner_csv:
                raise UserError("Partner reference: choose a Live Link Face CSV")
            motion = os.path.normpath(bpy.path.abspath(s.partner_csv))
            if (why := validate.file_problem(motion, "Partner reference", "a motion file")) is not None:
                raise UserError(why)
        steps = [Predict(self_a, partner_a, motion, obj.name)]
        targets = [Target(obj.name, "Character", *head, source=0)]
    plan = Plan(steps, fps, None, label=obj.name, liveliness=s.liveliness, seed=s.seed)
    if partner is not None:
        end = max(scene.frame_end, start + 1)
        frames = np.arange(start, end + 1, dtype=np.float64)
        motion, _missing = sample_shape_keys(partner, frames, s.mapping_preset)
        path = os.path.join(plan.work_dir, "partner_motion.npz")
        write_npz(path, motion, fps, CHANNELS)
        steps[0].partner_motion = path
    voices = [p for p in (self_a, partner_a) if p]
    choices = Choices.of(s)
    scene_name = scene.name
    plan.finish = lambda results: finish(scene_name, choices, targets,
                                         [results[t.source]["out"] for t in targets], start, voices)
    return plan


def finish(scene_name, choices, targets, paths, start, voices, undo="Duet: generate", extra=()):
    """Write every target's result (`paths`, one per target) in one transaction, then make it one
    undo step named `undo`. `extra`: parts of the report for characters not written (a cast's muted
    rows). Returns the one-line report: one part per character, then the notes."""
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        raise ValueError(f"scene '{scene_name}' no longer exists")
    reports = []
    # The artist may have changed the scene while the runtime worked: check again before writing.
    for t in targets:
        obj = bpy.data.objects.get(t.obj)
        why = None if obj is None else validate.output_problem(obj, choices.output_mode, t.what)
        if why is None and obj is not None:
            head_obj = bpy.data.objects.get(t.head_object) if t.head_object else None
            why = head_problem(obj, t.head_target, head_obj, choices.output_mode)
        if why is not None:
            raise ValueError(why)
    with Transaction() as tx:
        for t, path in zip(targets, paths, strict=True):
            obj = bpy.data.objects.get(t.obj)
            if obj is None:
                raise ValueError(f"character '{t.obj}' no longer exists")
            names, weights, fps = load_result(path)
            weights = choices.postprocess(names, weights, fps)
            weights = to_scene_rate(weights, fps, scene)
            reports.append((obj, write_character(scene, obj, names, weights,
                                                 choices.write_options(t, obj, start), tx)))
        notes = []
        if choices.add_sound_strips:
            notes += add_sound_strips(scene, voices, start, tx)
        if choices.set_frame_range:
            set_frame_range(scene, start, start + max(r.frames for _, r in reports) - 1, tx)
    push_undo(undo)
    parts = []
    for obj, r in reports:
        notes += r.notes
        parts.append(f"{obj.name}: {len(r.channels)} channels x {r.frames} frames into '{r.action.name}'")
        if r.unmatched:
            notes.append(f"{obj.name}: {len(r.unmatched)} ARKit channels have no shape key")
        if (note := drivers_note(obj, r.channels, choices.preset)) is not None:
            notes.append(note)
    return "Duet: " + "; ".join(parts + list(extra) + notes)


def drivers_note(obj, channels, preset, shown=3):
    """A driver sets its property after animation is evaluated, so keys on a driven shape key never
    play: name those keys (the first few and how many), or None."""
    mapping = resolve_mapping(obj, preset).mapping
    driven = driven_shape_keys(obj, [mapping[ch] for ch in channels if ch in mapping])
    if not driven:
        return None
    names = ", ".join(driven[:shown]) + (f" and {len(driven) - shown} more" if len(driven) > shown else "")
    return (f"{obj.name}: drivers override the written keys on {len(driven)} shape "
            f"key{'s' if len(driven) > 1 else ''} ({names})")


def push_undo(message):
    """One undo step for a finished generation (the timer that wrote it is no operator)."""
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError as exc:  # no undo in this context (e.g. some background setups)
        print(f"Duet: no undo step: {exc}")


# --- the running job and its timer ---------------------------------------------------------

def _status(job):
    wm = bpy.context.window_manager
    if wm is None:
        return
    wm.duet_running = job.running
    wm.duet_progress = job.progress * 100.0
    wm.duet_status = job.message if not job.running else f"{job.stage} ({job.progress:.0%})"
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR"):
                area.tag_redraw()


def _on_end(job):
    _status(job)
    print(job.message)


def start(context, wait=False, timeout=None, build=None):
    """Start a generation from the scene's settings: `build(context)` makes its Plan (default: the
    panel's character or conversation, build_plan; a cast: cast.build_plan). Returns the Job
    (already finished if wait)."""
    global _job
    if _job is not None and _job.running:
        raise UserError("Duet is already generating; cancel it first")
    config = runtime_config(context)
    plan = (build or build_plan)(context)
    if _job is not None:
        _job.cleanup()
    _job = Job(plan, config, on_end=_on_end)
    _status(_job)
    if wait:
        _job.run(timeout)
    elif not bpy.app.timers.is_registered(on_timer):
        bpy.app.timers.register(on_timer, first_interval=0.05)
    return _job


def on_timer():
    """The bpy.app.timers callback: moves the job on, returns the next delay or None when it ended.
    Public because the PyPI bpy module never fires timers: tests call it as Blender would."""
    job = _job
    if job is None or not job.tick():
        return None
    _status(job)
    return 0.05


def cancel():
    if _job is not None and _job.running:
        _job.cancel()
        _status(_job)


def stop_job():
    """On file load: the job is dropped (nothing written); the runtime stays warm."""
    global _job
    if bpy.app.timers.is_registered(on_timer):
        bpy.app.timers.unregister(on_timer)
    if _job is not None:
        if _job.running:
            _job.cancel()
            _job.state, _job.message = JobState.CANCELLED, "Duet: cancelled; nothing was changed."
        _job.cleanup()
        _job = None


def stop_all():
    """On unregister: drop the job and stop the runtime process."""
    stop_job()
    runtime.shutdown()
