"""FBX and glTF exports carry the shape-key animation: exported, re-imported, compared."""

import bpy
import numpy as np
import pytest
from addon_helpers import make_face

FRAMES = (1, 7, 20, 33, 40)
CHECK = ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp")


def _animated_face():
    """A face with a Duet result on it as an NLA strip (the default output: the hardest case,
    since exporters' defaults only look at active actions) and a modifier (which must not
    make the exporter drop the shape keys)."""
    from duet.addon.writer import Transaction, WriteOptions, write_character
    from duet.model_runtime.channels import CHANNELS

    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 40
    obj = make_face()
    obj.modifiers.new("Subdivision", "SUBSURF")
    t = np.arange(40)[:, None]
    w = (0.5 + 0.4 * np.sin(t / 5.0 + np.arange(len(CHANNELS)))).astype(np.float32)
    with Transaction() as tx:
        write_character(scene, obj, list(CHANNELS), w, WriteOptions(output_mode="NLA"), tx)
    scene.duet.character = obj
    expect = {}
    for f in FRAMES:
        scene.frame_set(f)
        expect[f] = {ch: obj.data.shape_keys.key_blocks[ch].value for ch in CHECK}
    return expect


def _reimport(importer, path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    importer(filepath=str(path))
    meshes = [o for o in scene.objects if o.type == "MESH" and o.data.shape_keys]
    assert len(meshes) == 1, "the mesh and its shape keys must survive the export"
    return scene, meshes[0]


def _compare(scene, obj, expect, tol):
    kbs = obj.data.shape_keys.key_blocks
    assert all(ch in kbs for ch in CHECK), sorted(kbs.keys())[:10]
    for f, vals in expect.items():
        scene.frame_set(f)
        for ch, v in vals.items():
            assert kbs[ch].value == pytest.approx(v, abs=tol), (f, ch)


def test_gltf_export_keeps_shape_key_animation(duet, tmp_path):
    expect = _animated_face()
    other = bpy.data.objects.new("Empty", None)
    bpy.context.scene.collection.objects.link(other)
    other.select_set(True)
    path = tmp_path / "face.glb"
    assert bpy.ops.duet.export_gltf(filepath=str(path)) == {"FINISHED"}
    assert other.select_get() and not bpy.data.objects["Face"].select_get(), "the selection is given back"
    scene, obj = _reimport(bpy.ops.import_scene.gltf, path)
    _compare(scene, obj, expect, 1e-3)


def test_fbx_export_keeps_shape_key_animation(duet, tmp_path):
    expect = _animated_face()
    path = tmp_path / "face.fbx"
    assert bpy.ops.duet.export_fbx(filepath=str(path)) == {"FINISHED"}
    # Blender writes frame f at FBX time f/fps; its importer adds a 1-frame offset by default.
    scene, obj = _reimport(lambda **kw: bpy.ops.import_scene.fbx(anim_offset=0.0, **kw), path)
    _compare(scene, obj, expect, 1e-3)
