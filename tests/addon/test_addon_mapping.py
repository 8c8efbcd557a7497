"""Shape-key name mapping: the rules on plain names, then a real mesh with non-ARKit names."""

import bpy
import numpy as np
import pytest
from addon_helpers import make_face


@pytest.fixture
def mapping(duet):
    from duet.addon import mapping

    return mapping


def _cc4(n):
    # Character Creator's ARKit profile style: numbered prefix, words split by underscores.
    import re

    return re.sub(r"(?<!^)([A-Z])", r"_\1", n[0].upper() + n[1:])


@pytest.mark.parametrize("style", [
    ("pascal", lambda n: n[0].upper() + n[1:]),
    ("lower", str.lower),
    ("bs_prefix", lambda n: "BS_" + n),
    ("blendshape_ns", lambda n: "blendShape1." + n),
    ("maya_ns", lambda n: "Face:" + n),
    ("lr_suffix", lambda n: n.replace("Left", "_L").replace("Right", "_R")),
    ("dot_lr", lambda n: n.replace("Left", ".L").replace("Right", ".R")),
    ("camel_lr", lambda n: n.replace("Left", "L").replace("Right", "R")),
    ("cc4", lambda n: f"A{sum(map(ord, n)) % 90 + 10:02d}_" + _cc4(n)),
], ids=lambda s: s[0])
def test_every_arkit_channel_found_in_common_styles(mapping, style):
    from duet.model_runtime.channels import ARKIT_NAMES

    keys = [style[1](n) for n in ARKIT_NAMES]
    res = mapping.match_shape_keys(["Basis_extra"] + keys)
    assert res.unmatched == []
    assert all(res.mapping[ch] == style[1](ch) for ch in ARKIT_NAMES)


def test_exact_beats_variant_and_no_key_is_used_twice(mapping):
    res = mapping.match_shape_keys(["JawOpen", "jawOpen", "eyeBlink_L", "EyeBlinkLeft"])
    assert res.mapping["jawOpen"] == "jawOpen" and res.how["jawOpen"] == "exact"
    assert res.mapping["eyeBlinkLeft"] == "EyeBlinkLeft" and res.how["eyeBlinkLeft"] == "case"
    assert len(set(res.mapping.values())) == len(res.mapping)


def test_unmatched_listed_in_arkit_order(mapping):
    from duet.model_runtime.channels import ARKIT_NAMES

    res = mapping.match_shape_keys(["jawOpen", "smile", "Basis"])
    assert res.unmatched == [c for c in ARKIT_NAMES if c != "jawOpen"]
    assert res.summary() == "1/52 ARKit channels matched"


def test_table_wins_and_empty_means_unmapped(mapping):
    res = mapping.match_shape_keys(["jawOpen", "MouthOpenWide", "eyeBlinkLeft"],
                                   table={"jawOpen": "MouthOpenWide", "eyeBlinkLeft": ""})
    assert res.mapping["jawOpen"] == "MouthOpenWide" and res.how["jawOpen"] == "table"
    assert "eyeBlinkLeft" in res.unmatched


def test_presets(mapping):
    keys = ["JawOpen", "jawOpen", "eyeBlink_L"]
    assert mapping.match_shape_keys(keys, preset="PASCAL").mapping["jawOpen"] == "JawOpen"
    assert mapping.match_shape_keys(keys, preset="ARKIT").mapping["jawOpen"] == "jawOpen"
    assert mapping.match_shape_keys(keys, preset="LR_SUFFIX").mapping["eyeBlinkLeft"] == "eyeBlink_L"


def test_non_arkit_names_on_a_mesh_get_the_right_curves(duet):
    """A rig with PascalCase + _L/_R + a prefix: every channel lands on its own key."""
    from duet.addon.scene import fill_mapping_table
    from duet.addon.writer import Transaction, WriteOptions, write_character
    from duet.model_runtime.channels import ARKIT_NAMES, CHANNELS

    style = lambda n: "BS_" + (n[0].upper() + n[1:]).replace("Left", "_L").replace("Right", "_R")
    obj = make_face(key_names=[style(n) for n in ARKIT_NAMES] + ["Smile_Custom"])
    rng = np.random.default_rng(3)
    w = rng.uniform(0, 1, (12, len(CHANNELS))).astype(np.float32)
    with Transaction() as tx:
        rep = write_character(bpy.context.scene, obj, list(CHANNELS), w, WriteOptions(), tx)
    assert rep.unmatched == []
    for ch in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp"):
        bpy.context.scene.frame_set(1 + 5)
        assert obj.data.shape_keys.key_blocks[style(ch)].value == pytest.approx(w[5, CHANNELS.index(ch)],
                                                                                abs=1e-5)
    # The editable table: the artist re-points jawOpen at a custom key.
    res = fill_mapping_table(obj)
    assert len(obj.duet_map) == 52 and not res.unmatched
    next(it for it in obj.duet_map if it.channel == "jawOpen").shape_key = "Smile_Custom"
    with Transaction() as tx:
        write_character(bpy.context.scene, obj, list(CHANNELS), w, WriteOptions(), tx)
    bpy.context.scene.frame_set(1 + 5)
    assert obj.data.shape_keys.key_blocks["Smile_Custom"].value == pytest.approx(w[5, CHANNELS.index("jawOpen")],
                                                                                 abs=1e-5)


def test_refresh_mapping_operator_reports_unmatched(duet):
    obj = make_face(key_names=["jawOpen", "EyeBlink_L", "random"])
    bpy.context.scene.duet.character = obj
    assert bpy.ops.duet.refresh_mapping() == {"FINISHED"}
    missing = [it.channel for it in obj.duet_map if not it.shape_key]
    assert len(missing) == 50 and "jawOpen" not in missing and "eyeBlinkLeft" not in missing
