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
    return None if has_shape_keys(obj) else f"{what}: pick a mesh with shape keys"


def character(context):
    """The character the panel animates: its picker, else the active object."""
    s = context.scene.duet
    return s.character or context.active_object


def generate_reason(context, job=None):
    """`job`: the current job (addon.generate.current_job()), passed in so this module stays a leaf."""
    if job is not None and job.running:
        return "Duet is already generating"
    s = context.scene.duet
    if (why := character_problem(character(context))) is not None:
        return why
    if not (s.self_audio or s.self_strip):
        return "Choose the character's own voice"
    if s.self_audio and not os.path.isfile(bpy.path.abspath(s.self_audio)):
        return "Own voice: file not found"
    if s.conversation:
        return character_problem(s.character_b, "Second character")
    return None


def character_reason(context):
    return character_problem(character(context))


def cancel_reason(job):
    return None if job is not None and job.running else "Nothing is running"
