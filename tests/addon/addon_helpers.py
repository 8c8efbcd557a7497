"""Helpers for the add-on tests (a module of its own: `conftest` is a name every test folder uses)."""

import importlib.util
import os
import sys

import bpy
import numpy as np
import pytest

from model_runtime.paths import ROOT as REPO  # the one place that knows the folders


def _root_conftest():
    """tests/conftest.py as a module (its speechlike() makes the test voices)."""
    spec = importlib.util.spec_from_file_location("duet_root_conftest", REPO / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ROOT_CONFTEST = _root_conftest()


def load_extension():
    if "duet" not in sys.modules:
        spec = importlib.util.spec_from_file_location("duet", REPO / "__init__.py",
                                                      submodule_search_locations=[str(REPO)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["duet"] = mod
        spec.loader.exec_module(mod)
        mod.__time__ = os.path.getmtime(mod.__file__)  # else addon_utils tries importlib.reload
    return sys.modules["duet"]


def runtime_python():
    path = os.environ.get("DUET_RUNTIME_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    if not os.path.isfile(path):
        pytest.skip(f"no runtime Python at {path} (set DUET_RUNTIME_PYTHON)")
    return path


def make_face(name="Face", key_names=None, scene=None):
    """A small mesh with a Basis and one shape key per name (default: the 52 ARKit names)."""
    from duet.model_runtime.channels import ARKIT_NAMES

    scene = scene or bpy.context.scene
    mesh = bpy.data.meshes.new(name)
    verts = [(x, 0.0, z) for z in range(3) for x in range(3)]
    faces = [(0, 1, 4, 3), (1, 2, 5, 4), (3, 4, 7, 6), (4, 5, 8, 7)]
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for i, n in enumerate(key_names or ARKIT_NAMES):
        kb = obj.shape_key_add(name=n, from_mix=False)
        kb.data[i % 9].co.y += 0.1  # each key moves something, so exporters keep it
    bpy.context.view_layer.objects.active = obj
    return obj


def snapshot():
    """Everything a generation may touch, as plain data: equal snapshots mean an unchanged scene."""
    from duet.addon import animdata

    def fcurves_of(act, slot=None):
        return sorted((fc.data_path, fc.array_index, len(fc.keyframe_points),
                       tuple(np.round([k.co[1] for k in fc.keyframe_points][:50], 6)))
                      for fc in animdata.action_fcurves(act, slot))

    def anim(idb):
        ad = idb.animation_data
        if ad is None:
            return None
        return (ad.action.name if ad.action else None,
                [(t.name, t.mute, [(s.name, s.action.name if s.action else None, s.frame_start, s.frame_end)
                                   for s in t.strips]) for t in ad.nla_tracks])

    out = {"actions": sorted((a.name, tuple(fcurves_of(a))) for a in bpy.data.actions),
           "sounds": sorted(s.name for s in bpy.data.sounds), "ids": {}}
    for ob in bpy.data.objects:
        out["ids"][ob.name] = anim(ob)
        key = getattr(ob.data, "shape_keys", None)
        if key is not None:
            out["ids"][key.name] = anim(key)
    for sc in bpy.data.scenes:
        se = sc.sequence_editor
        strips = [] if se is None else (se.strips if hasattr(se, "strips") else se.sequences)
        out["ids"][sc.name] = (sc.frame_start, sc.frame_end, sc.render.fps, se is not None,
                               sorted((s.name, s.channel, s.frame_start) for s in strips))
    return out
