"""What Duet can animate, and why an operator cannot run now (one line for the tooltip), or None.

The one home of the "mesh with shape keys" check and its message: operators' poll(), the panel's
pickers, generate, Live Link Face import and scripts/animate.py all ask here. Imports nothing
else of the add-on, so every addon/ module may use it.
"""

import os

import bpy


def has_shape_keys(obj):
    """A mesh with shape keys: the only kind of object Duet writes a face onto."""
    return obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None


def character_problem(obj, what="Character"):
    """None when `obj` can be animated, else one line naming `what` and what to do."""
    if not has_shape_keys(obj):
        return f"{what}: pick a mesh with shape keys"
    if not obj.data.shape_keys.use_relative:  # absolute keys follow the Evaluation Time, not key values
        return (f"{what}: '{obj.name}' has absolute shape keys, on which keys do nothing: turn on Relative "
                "in its Shape Keys panel")
    return None


def in_tweak_mode(idb):
    ad = getattr(idb, "animation_data", None)
    return ad is not None and ad.use_tweak_mode


def linked_from(idb):
    """The library file `idb` is linked from ('lib.blend'), or None for local data and overrides."""
    lib = getattr(idb, "library", None)
    return None if lib is None else (bpy.path.basename(lib.filepath) or lib.name)


def linked_problem(obj, what="Character"):
    """Saving keeps local data and what a library override changes, never edits of linked data: keys
    written onto a purely linked object would vanish on reopen. None when `obj` is not linked."""
    if obj is None or (lib := linked_from(obj)) is None:
        return None
    return (f"{what}: '{obj.name}' is linked from {lib}, so keys on it would not be saved: make a library "
            "override (Object > Library Override > Make) and generate on it")


def output_problem(obj, output_mode, what="Character"):
    """None when keys written onto `obj` will be saved and play, else one line. 'Active action' output
    assigns the shape keys' action, which Blender keeps read-only while their NLA is in tweak mode
    (an NLA strip can still be added)."""
    if (why := linked_problem(obj, what)) is not None:
        return why
    if output_mode == "ACTIVE" and has_shape_keys(obj) and in_tweak_mode(obj.data.shape_keys):
        return (f"{what}: {obj.name}'s shape keys are in NLA tweak mode: exit tweak mode (Tab in the NLA "
                "editor) or choose another output")
    return None


def file_problem(path, what, kind):
    """One line when `path` (absolute) is a folder or missing, naming `what` (the setting) and `kind`
    ("an audio file", "a motion file"); None when it is a file."""
    if os.path.isdir(path):
        return f"{what}: a folder, not {kind}: {path}"
    if not os.path.isfile(path):
        return f"{what}: file not found: {path}"
    return None


def writable_problem(obj, output_mode, what="Character"):
    """The character checks, then whether keys can go to `output_mode` on it."""
    return character_problem(obj, what) or output_problem(obj, output_mode, what)


def character(context):
    """The character the panel animates: its picker, else the active object."""
    s = context.scene.duet
    return s.character or context.active_object


def generate_reason(context, job=None):
    """`job`: the current job (addon.generate.current_job()), passed in so this module stays a leaf."""
    if job is not None and job.running:
        return "Duet is already generating"
    s = context.scene.duet
    if (why := writable_problem(character(context), s.output_mode)):
        return why
    if s.head_target != "NONE" and (why := linked_problem(s.head_object, "Head motion")) is not None:
        return why
    if not (s.self_audio or s.self_strip):
        return "Choose the character's own voice"
    if s.self_audio and (why := file_problem(os.path.normpath(bpy.path.abspath(s.self_audio)), "Own voice",
                                              "an audio file")):
        return why
    if s.conversation:
        return writable_problem(s.character_b, s.output_mode, "Second character")
    return None


def character_reason(context):
    return character_problem(character(context))


def cancel_reason(job):
    return None if job is not None and job.running else "Nothing is running"
