"""Duet: faces for two-person conversations (Blender extension entry point).

Wires addon/ (data, runtime, keys), ops/ (operators) and ui/ (panels). Unregister mirrors register
in reverse and stops the runtime process, so disabling the extension leaves nothing running.
"""

from . import addon, ops, ui

_modules = (addon, ops, ui)


def register():
    for m in _modules:
        m.register()


def unregister():
    for m in reversed(_modules):
        m.unregister()
