"""The Blender side that is not UI: settings, runtime client, job, keyframe writer, mapping, I/O."""

import bpy

from . import generate, prefs, props

classes = prefs.classes + props.classes


@bpy.app.handlers.persistent
def _on_load_pre(*_args):
    # A job must not write into the next file: its objects are looked up by name.
    generate.stop_job()


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    props.register_props()
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    generate.stop_all()
    props.unregister_props()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
