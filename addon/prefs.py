"""Add-on preferences: where the runtime lives and how it runs."""

from types import SimpleNamespace

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_ID = __package__.rpartition(".")[0]  # the extension's own package (bl_idname must match it)

DEVICE_ITEMS = [
    ("AUTO", "Auto", "GPU when the runtime finds one, else CPU"),
    ("GPU", "GPU", "CUDA GPU; the runtime says so when it falls back to the CPU"),
    ("CPU", "CPU", "Always the CPU"),
]
BACKEND_ITEMS = [
    ("onnx", "ONNX Runtime", "Small and fast; the default"),
    ("torch", "PyTorch", "Needs torch in the runtime environment (GPU via CUDA)"),
]


class DuetPreferences(bpy.types.AddonPreferences):
    """No draw() here: addon/ never imports ui/. ui.register() sets ui's drawing as this class's
    `draw` (and unregister removes it): Blender's preferences editor looks `draw` up on the class
    each time it draws, so one set after registration is the one it calls."""

    bl_idname = ADDON_ID

    runtime_python: StringProperty(
        name="Runtime Python", subtype="FILE_PATH",
        description="Python interpreter with the runtime's packages. Empty: found automatically "
                    "(the managed environment, DUET_RUNTIME_PYTHON, or the add-on's .venv)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO")
    backend: EnumProperty(name="Backend", items=BACKEND_ITEMS, default="onnx")
    model_path: StringProperty(
        name="Model", subtype="FILE_PATH",
        description="Model file (.onnx for ONNX Runtime, .pt for PyTorch). Empty: the shipped model")
    wheels_dir: StringProperty(
        name="Wheels folder", subtype="DIR_PATH",
        description="Install the runtime from this folder of wheels instead of the internet")
    runtime_info: StringProperty(name="Runtime info", description="What 'Check runtime' last found")


_DEFAULTS = SimpleNamespace(runtime_python="", device="AUTO", backend="onnx", model_path="", wheels_dir="",
                            runtime_info="")


def get_prefs(context=None):
    """The preferences, or the defaults when the add-on is loaded without being enabled as one."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else _DEFAULTS


classes = (DuetPreferences,)
