"""Why an operator cannot run now (one line for the tooltip), or None: operators' poll() uses it."""

import os

import bpy

from . import generate


def character(context):
    s = context.scene.duet
    return s.character or context.active_object


def _has_keys(obj):
    return obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None


def generate_reason(context):
    job = generate.current_job()
    if job is not None and job.running:
        return "Duet is already generating"
    s = context.scene.duet
    if not _has_keys(character(context)):
        return "Pick a character: a mesh with shape keys"
    if not (s.self_audio or s.self_strip):
        return "Choose the character's own voice"
    if s.self_audio and not os.path.isfile(bpy.path.abspath(s.self_audio)):
        return "Own voice: file not found"
    if s.conversation and not _has_keys(s.character_b):
        return "Conversation: pick the second character"
    return None


def character_reason(context):
    return None if _has_keys(character(context)) else "Pick a character: a mesh with shape keys"


def cancel_reason(context):
    job = generate.current_job()
    return None if job is not None and job.running else "Nothing is running"
