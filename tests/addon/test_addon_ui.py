"""Panels draw (against a recording layout: the PyPI module has no screen to draw on), every
property they show exists, and operators explain why they are disabled."""

import bpy
import numpy as np
import pytest
from addon_helpers import make_face


class Layout:
    """Records what a panel asks for and checks each property path against RNA."""

    def __init__(self, log):
        self.log = log
        self.active = self.enabled = True
        self.scale_y = 1.0

    def _sub(self, *a, **k):
        return Layout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        assert name in data.bl_rna.properties, name
        assert search_name in search_data.bl_rna.properties, search_name
        self.log.append(("prop_search", name))

    def operator(self, idname, **kw):
        mod, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, mod), name) and getattr(getattr(bpy.ops, mod), name).idname(), idname
        self.log.append(("operator", idname))

    def label(self, **kw):
        self.log.append(("label", kw.get("text", "")))

    def template_list(self, list_id, _id, data, prop, active_data, active_prop, **kw):
        assert hasattr(bpy.types, list_id) and prop in data.bl_rna.properties
        self.log.append(("list", prop))


def _draw_all(context):
    import duet.ui as ui

    log = []
    for cls in ui.classes:
        if issubclass(cls, bpy.types.Panel):
            cls.draw(type("P", (), {"layout": Layout(log)})(), context)
    prefs = context.preferences.addons["duet"].preferences
    # As Blender's preferences editor does: a layout on the class, then the class's draw().
    type(prefs).layout = Layout(log)
    try:
        prefs.draw(context)
    finally:
        del type(prefs).layout
    return log


def test_panels_draw_in_every_mode(duet, prefs):
    obj = make_face()
    partner = make_face("Partner")
    s = bpy.context.scene.duet
    s.character = obj
    bpy.ops.duet.refresh_mapping()
    prefs.runtime_info = '{"version": "0.1.0", "provider": "CPUExecutionProvider"}'
    bpy.context.scene.sequence_editor_create()
    for mode in ("NONE", "CHARACTER", "CSV"):
        s.partner_mode, s.partner_object = mode, partner
        log = _draw_all(bpy.context)
        assert ("operator", "duet.generate") in log and ("prop", "partner_mode") in log
    s.conversation, s.head_target = True, "BONE"
    log = _draw_all(bpy.context)
    assert ("prop", "character_b") in log and ("list", "duet_map") in log
    bpy.context.window_manager.duet_running = True
    assert ("operator", "duet.cancel") in _draw_all(bpy.context)
    assert ("prop", "runtime_python") in log and ("operator", "duet.check_runtime") in log


def test_preferences_draw_comes_and_goes_with_ui(duet):
    """addon/ never imports ui/: ui.register() gives the preferences their draw(), unregister takes it."""
    import duet.ui as ui
    from duet.addon.prefs import DuetPreferences

    assert "draw" in vars(DuetPreferences)
    ui.unregister()
    assert "draw" not in vars(DuetPreferences)
    ui.register()
    assert "draw" in vars(DuetPreferences)


def test_generate_explains_why_it_is_disabled(duet):
    assert not bpy.ops.duet.generate.poll()
    with pytest.raises(RuntimeError, match="Character: pick a mesh with shape keys"):
        bpy.ops.duet.generate(wait=True)
    bpy.context.scene.duet.character = make_face()
    with pytest.raises(RuntimeError, match="own voice"):
        bpy.ops.duet.generate(wait=True)
    assert not bpy.ops.duet.cancel.poll()


def test_intensity_and_smoothing(duet):
    from duet.addon import curves
    from duet.model_runtime.channels import CHANNELS

    names = list(CHANNELS)
    w = np.ones((10, 55), np.float32)
    out = curves.apply_intensity(w, names, {"mouth": 0.5, "brows": 2.0, "eyes": 0.0, "head": 1.0})
    assert out[0, names.index("jawOpen")] == 0.5 and out[0, names.index("browInnerUp")] == 2.0
    assert out[0, names.index("eyeBlinkLeft")] == 0.0 and out[0, names.index("headYaw")] == 1.0
    step = np.zeros((40, 1), np.float32)
    step[20:] = 1.0
    sm = curves.smooth(step, 2.0)
    assert sm[0, 0] == pytest.approx(0.0, abs=1e-6) and sm[-1, 0] == pytest.approx(1.0, abs=1e-6)
    assert 0.2 < sm[19, 0] < 0.8 and np.all(np.diff(sm[:, 0]) >= -1e-7)
    idx = curves.reduce_keys(np.r_[np.zeros(50), np.linspace(0, 1, 51)], 1e-6)
    assert list(idx) == [0, 50, 100]  # the corner where the ramp starts
