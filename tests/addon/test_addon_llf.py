"""Live Link Face CSV: export a character's animation, import it back, real capture in."""

import csv

import bpy
import numpy as np
import pytest
from addon_helpers import make_face, snapshot


def _animate(obj, t=90, seed=0):
    from duet.addon.writer import Transaction, WriteOptions, write_character
    from duet.model_runtime.channels import CHANNELS

    rng = np.random.default_rng(seed)
    w = np.clip(np.cumsum(rng.normal(0, 0.05, (t, len(CHANNELS))), 0) + 0.5, 0, 1).astype(np.float32)
    with Transaction() as tx:
        write_character(bpy.context.scene, obj, list(CHANNELS), w, WriteOptions(output_mode="ACTIVE"), tx)
    return w


def test_csv_round_trip(duet, tmp_path):
    from duet.model_runtime.channels import CHANNELS, LLF_HEADER

    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start, scene.frame_end = 1, 90
    src = make_face("Source")
    w = _animate(src)
    scene.duet.character = src
    path = tmp_path / "take.csv"
    assert bpy.ops.duet.export_csv(filepath=str(path)) == {"FINISHED"}
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == LLF_HEADER and len(rows) == 91
    assert float(rows[1 + 10][LLF_HEADER.index("JawOpen")]) == pytest.approx(w[10, CHANNELS.index("jawOpen")], abs=1e-6)

    dst = make_face("Target")
    scene.duet.character = dst
    assert bpy.ops.duet.import_csv(filepath=str(path), start_frame=1) == {"FINISHED"}
    for f in (1, 17, 60, 90):
        scene.frame_set(f)
        for ch in ("jawOpen", "eyeBlinkRight", "mouthLeft", "jawRight"):
            assert dst.data.shape_keys.key_blocks[ch].value == pytest.approx(
                src.data.shape_keys.key_blocks[ch].value, abs=1e-5), (f, ch)


def test_import_real_capture(duet, shared_dir):
    """The real iPhone export (60-fps timecode, JawRight before JawLeft) onto a 24-fps scene."""
    from duet.model_runtime.motion_io import read_motion

    path = shared_dir / "data" / "livelinkface" / "alex_rom_3.csv"
    m = read_motion(str(path))
    obj = make_face()
    bpy.context.scene.duet.character = obj
    assert bpy.ops.duet.import_csv(filepath=str(path), start_frame=1) == {"FINISHED"}
    key = obj.data.shape_keys
    act = key.animation_data.nla_tracks[-1].strips[0].action  # the panel's default output: NLA
    assert act.name.startswith("LLF alex_rom_3") and key.animation_data.action is None
    n = int(np.ceil(m.duration * 24 - 1e-6))
    bpy.context.scene.frame_set(1 + n // 2)
    expect = m.resampled(24.0, n)[n // 2]
    for j, ch in ((17, "jawOpen"), (15, "jawLeft"), (16, "jawRight"), (0, "eyeBlinkLeft")):
        assert key.key_blocks[ch].value == pytest.approx(float(np.clip(expect[j], 0, 1)), abs=1e-5)


def test_bad_csv_changes_nothing(duet, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Timecode,Foo,Bar\n00:00:00:00.000,1,2\n")
    obj = make_face()
    bpy.context.scene.duet.character = obj
    before = snapshot()
    with pytest.raises(RuntimeError, match="Import failed.*bad.csv.*no ARKit channel"):
        bpy.ops.duet.import_csv(filepath=str(bad))
    assert snapshot() == before
