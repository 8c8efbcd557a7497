"""The demo head (scripts/demo_head.py): 52 ARKit keys that deform the way their names say.

Conventions checked here: the head faces -Y, Z is up, "Left" is the character's own left (+X),
the object origin is the neck pivot. Distances are in metres (the head is ~0.24 m tall).
"""

import sys
import time

import bpy
import numpy as np
import pytest
from addon_helpers import REPO

for p in (str(REPO), str(REPO / "scripts")):
    if p not in sys.path:
        sys.path.insert(0, p)

import demo_head  # noqa: E402

from model_runtime.channels import ARKIT_NAMES  # noqa: E402
from model_runtime.paths import ASSETS  # noqa: E402

ASSET = ASSETS / "demo_head.blend"
MOVED = 1e-3    # a vertex "moves" by more than 1 mm
STILL = 1e-6


def _extract(obj):
    """Everything the tests need as plain numpy (bpy data does not outlive a factory reset)."""
    me = obj.data
    n = len(me.vertices)
    keys = {}
    for kb in me.shape_keys.key_blocks:
        co = np.empty(n * 3, np.float32)
        kb.data.foreach_get("co", co)
        keys[kb.name] = co.reshape(n, 3).astype(float)
    groups = {vg.index: vg.name for vg in obj.vertex_groups}
    member = {name: [] for name in groups.values()}
    jaw = np.zeros(n)
    for v in me.vertices:
        for g in v.groups:
            member[groups[g.group]].append(v.index)
            if groups[g.group] == "jaw":
                jaw[v.index] = g.weight
    mat_of_vert = np.full(n, -1)
    for poly in me.polygons:
        mat_of_vert[list(poly.vertices)] = poly.material_index
    mats = [m.name.split("_", 1)[1] for m in me.materials]
    return {
        "names": [kb.name for kb in me.shape_keys.key_blocks],
        "relative": {kb.name: kb.relative_key.name for kb in me.shape_keys.key_blocks},
        "keys": keys, "base": keys["Basis"],
        "groups": {k: np.asarray(v, int) for k, v in member.items()},
        "mat": {name: np.flatnonzero(mat_of_vert == i) for i, name in enumerate(mats)},
        "materials": {m.name: tuple(m.diffuse_color) for m in me.materials},
        "n": n, "jaw": jaw,
    }


@pytest.fixture(scope="module")
def head():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    obj = demo_head.build_head()
    seconds = time.perf_counter() - t0
    data = _extract(obj)
    data["seconds"] = seconds
    data["location"] = tuple(obj.location)
    body = bpy.data.objects.get("DemoHead_Body")
    data["body"] = body is not None and body.constraints[0].type == "COPY_LOCATION" \
        and body.constraints[0].target == obj and body.data.shape_keys is None
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return data


def _delta(head, name):
    return head["keys"][name] - head["base"]


def _moved(head, name):
    return np.linalg.norm(_delta(head, name), axis=1) > MOVED


def _lips(head):
    return head["mat"]["Lips"]


# ---------------------------------------------------------------- names, coverage, shape

def test_all_52_arkit_keys_after_basis_in_order(head):
    assert head["names"] == ["Basis", *ARKIT_NAMES]
    assert all(head["relative"][n] == "Basis" for n in ARKIT_NAMES)


@pytest.mark.parametrize("name", ARKIT_NAMES)
def test_every_key_moves_some_vertices(head, name):
    assert _moved(head, name).sum() >= 8, f"{name} moves almost nothing"


def test_modest_size_and_fast_build(head):
    assert 1500 < head["n"] < 8000
    assert head["seconds"] < 10.0          # ~0.4 s here; generous for a loaded machine


def test_neck_ears_hair_never_move(head):
    still = np.concatenate([head["groups"][g] for g in ("neck", "ear_L", "ear_R", "hair")])
    for name in ARKIT_NAMES:
        assert np.abs(_delta(head, name)[still]).max() < STILL, name


def test_faces_minus_y_with_origin_at_the_neck_pivot(head):
    base = head["base"]
    nose, neck = base[head["groups"]["nose"]], base[head["groups"]["neck"]]
    assert nose[:, 1].min() < base[head["groups"]["hair"], 1].min()      # the nose is the front
    assert abs(nose[:, 0].mean()) < 1e-6
    # the origin lies inside the neck: the head turns on its neck when the object rotates
    assert neck[:, 2].min() < 0.0 < neck[:, 2].max()
    assert np.hypot(neck[:, 0], neck[:, 1] - neck[:, 1].mean()).min() > 0.02
    assert abs(neck[:, 0].mean()) < 1e-6 and abs(neck[:, 1].mean()) < 0.03
    eyes, lips = base[head["groups"]["eye_L"], 2].mean(), base[_lips(head), 2].mean()
    assert base[:, 2].max() > eyes > lips > 0.0 and base[:, 2].max() > 0.2


def test_symmetric_and_left_keys_mirror_right_keys(head):
    """A sign error in one side's key (Left moving the wrong way) breaks the mirror."""
    from mathutils.kdtree import KDTree

    base = head["base"]
    tree = KDTree(len(base))
    for i, co in enumerate(base):
        tree.insert(co, i)
    tree.balance()
    mirror = np.array([tree.find((-x, y, z))[1] for x, y, z in base])
    dist = np.linalg.norm(base[mirror] * [-1, 1, 1] - base, axis=1)
    assert dist.max() < 1e-5, "the neutral head is not left/right symmetric"
    # where the closed lips meet, upper and lower lip vertices coincide and could pair either
    # way: compare the vertices whose position is their own
    unique = np.array([len(tree.find_range(co, 1e-7)) == 1 for co in base])
    assert unique.mean() > 0.9
    flip = np.array([-1.0, 1.0, 1.0])
    for left in [n for n in ARKIT_NAMES if n.endswith("Left")]:
        right = left[:-4] + "Right"
        dl, dr = _delta(head, left), _delta(head, right)
        err = np.abs(dr[mirror] * flip - dl)[unique].max()
        assert err < 1e-5, f"{left} and {right} are not mirror images ({err:.2g} m)"


@pytest.mark.parametrize("name", [n for n in ARKIT_NAMES if n.endswith(("Left", "Right"))
                                  and not n.startswith(("jaw", "mouthLeft", "mouthRight"))])
def test_one_sided_keys_leave_the_other_side_alone(head, name):
    sign = 1.0 if name.endswith("Left") else -1.0
    other = sign * head["base"][:, 0] < -0.025
    assert np.abs(_delta(head, name)[other]).max() < STILL
    assert (_moved(head, name) & (sign * head["base"][:, 0] > 0)).any()


# ---------------------------------------------------------------- what the names say

def test_jaw_open_drops_the_chin_and_leaves_the_upper_face(head):
    base, d = head["base"], _delta(head, "jawOpen")
    mouth_z = base[_lips(head), 2].mean()
    shell = head["groups"]["shell"]
    front = base[shell, 1] < base[shell, 1].min() + 0.03
    chin = shell[front & (np.abs(base[shell, 0]) < 0.015) & (base[shell, 2] < mouth_z - 0.02)]
    assert len(chin) >= 2
    assert d[chin, 2].mean() < -0.01                   # > 1 cm down
    upper = base[:, 2] > mouth_z + 0.035
    assert np.abs(d[upper]).max() < STILL
    # the lower teeth and the tongue go with the jaw, the upper teeth stay
    assert d[head["groups"]["teeth_lower"], 2].mean() < -0.005
    assert d[head["groups"]["tongue"], 2].mean() < -0.005
    assert np.abs(d[head["groups"]["teeth_upper"]]).max() < STILL


def test_mouth_close_brings_the_lips_together_over_an_open_jaw(head):
    base = head["base"]
    both = base + _delta(head, "jawOpen") + _delta(head, "mouthClose")
    opened = base + _delta(head, "jawOpen")
    lips = _lips(head)
    centre = lips[np.abs(base[lips, 0]) < 0.002]

    def gap(pos):
        z = pos[centre, 2]
        return z.max() - z.min()

    assert gap(opened) > gap(base) + 0.01
    assert gap(both) < gap(base) + 0.4 * (gap(opened) - gap(base))
    # the chin stays down: mouthClose moves lips, not the jaw
    shell = head["groups"]["shell"]
    chin = shell[(np.abs(base[shell, 0]) < 0.015) & (base[shell, 2] < base[lips, 2].min() - 0.02)]
    assert np.abs(both[chin, 2] - opened[chin, 2]).max() < 0.006


def _corner(head, side):
    lips = _lips(head)
    return lips[np.argmax(side * head["base"][lips, 0])]


def test_smile_left_raises_and_pulls_back_the_left_corner(head):
    d = _delta(head, "mouthSmileLeft")
    c = _corner(head, +1)
    assert d[c, 2] > 0.005 and d[c, 1] > 0.0 and d[c, 0] > 0.0
    assert np.abs(d[_corner(head, -1)]).max() < STILL


def test_frown_right_lowers_the_right_corner(head):
    d = _delta(head, "mouthFrownRight")
    assert d[_corner(head, -1), 2] < -0.005
    assert np.abs(d[_corner(head, +1)]).max() < STILL


@pytest.mark.parametrize("name", ["mouthPucker", "mouthFunnel"])
def test_pucker_and_funnel_push_the_lips_forward_and_narrow_the_mouth(head, name):
    base, d = head["base"], _delta(head, name)
    lips = _lips(head)
    assert d[lips, 1].mean() < -0.004                    # forward is -Y
    width = np.ptp(base[lips, 0])
    assert np.ptp((base + d)[lips, 0]) < 0.85 * width


def test_funnel_opens_the_lips_and_pucker_keeps_them_shut(head):
    base, lips = head["base"], _lips(head)
    centre = lips[np.abs(base[lips, 0]) < 0.002]
    upper, lower = centre[head["jaw"][centre] < 0.5], centre[head["jaw"][centre] > 0.5]
    assert len(upper) >= 4 and len(lower) >= 4

    def mouth_open(pos):
        # the upper lip's lowest point above the lower lip's highest point, on the centre line
        return pos[upper, 2].min() - pos[lower, 2].max()

    funnel = base + _delta(head, "mouthFunnel")
    pucker = base + _delta(head, "mouthPucker")
    assert mouth_open(funnel) > mouth_open(base) + 0.008
    assert abs(mouth_open(base)) < 1e-4                                  # closed in neutral
    assert mouth_open(pucker) < mouth_open(base) + 0.002


def test_blink_left_closes_only_the_left_upper_lid(head):
    d = _delta(head, "eyeBlinkLeft")
    lid_l, lid_r = head["groups"]["lid_upper_L"], head["groups"]["lid_upper_R"]
    assert head["base"][lid_l, 0].min() > 0.0                 # the character's left is +X
    # the visible part (in front of the eyeball's centre) comes down, none of it goes up
    front = lid_l[head["base"][lid_l, 1] < head["base"][head["groups"]["eye_L"], 1].mean()]
    assert d[front, 2].mean() < -0.005 and d[front, 2].max() < 1e-4
    assert np.abs(d[lid_r]).max() < STILL
    assert np.abs(d[head["base"][:, 0] < 0]).max() < STILL
    # closed: the upper lid's edge comes down below the lower lid's edge
    closed = head["base"] + d
    lash = np.intersect1d(lid_l, head["mat"]["Lash"])
    assert closed[lash, 2].min() < head["base"][head["groups"]["lid_lower_L"], 2].max()


def test_wide_and_squint_move_the_lids_apart_and_together(head):
    base = head["base"]
    up, low = head["groups"]["lid_upper_L"], head["groups"]["lid_lower_L"]
    wide, squint = _delta(head, "eyeWideLeft"), _delta(head, "eyeSquintLeft")
    assert wide[up, 2].mean() > 0.001 and wide[low, 2].mean() < 0.0
    assert squint[low, 2].mean() > 0.001 and squint[up, 2].mean() < 0.0
    assert base[up, 0].min() > 0


@pytest.mark.parametrize("name,side,axis,sign", [
    ("eyeLookUpLeft", +1, 2, +1), ("eyeLookDownLeft", +1, 2, -1),
    ("eyeLookOutLeft", +1, 0, +1), ("eyeLookInLeft", +1, 0, -1),
    ("eyeLookUpRight", -1, 2, +1), ("eyeLookDownRight", -1, 2, -1),
    ("eyeLookOutRight", -1, 0, -1), ("eyeLookInRight", -1, 0, +1),
])
def test_gaze_keys_move_that_pupil_the_named_way(head, name, side, axis, sign):
    base, d = head["base"], _delta(head, name)
    pupils = head["mat"]["Pupil"]
    this = pupils[side * base[pupils, 0] > 0]
    that = pupils[side * base[pupils, 0] < 0]
    assert sign * d[this, axis].mean() > 0.003
    assert np.abs(d[that]).max() < STILL


def test_brow_inner_up_raises_the_inner_ends_more(head):
    base, d = head["base"], _delta(head, "browInnerUp")
    for g in ("brow_L", "brow_R"):
        b = head["groups"][g]
        ax = np.abs(base[b, 0])
        inner, outer = b[ax < np.quantile(ax, 0.2)], b[ax > np.quantile(ax, 0.8)]
        assert d[inner, 2].mean() > 0.006
        assert d[inner, 2].mean() > 3 * max(d[outer, 2].mean(), 0.0)


def test_brow_down_and_outer_up(head):
    base = head["base"]
    b = head["groups"]["brow_L"]
    assert _delta(head, "browDownLeft")[b, 2].mean() < -0.004
    d = _delta(head, "browOuterUpLeft")
    ax = base[b, 0]
    assert d[b[ax > np.quantile(ax, 0.8)], 2].mean() > 0.005 > d[b[ax < np.quantile(ax, 0.2)], 2].mean()


def test_cheek_puff_pushes_both_cheeks_outward(head):
    base, d = head["base"], _delta(head, "cheekPuff")
    shell = np.intersect1d(head["groups"]["shell"], head["mat"]["Skin"])
    mouth_z = base[_lips(head), 2].mean()
    axis_y = base[head["groups"]["neck"], 1].mean()
    for side in (1, -1):
        cheek = shell[(side * base[shell, 0] > 0.035) & (np.abs(base[shell, 2] - mouth_z) < 0.015)
                      & (base[shell, 1] < axis_y - 0.03)]
        assert len(cheek) >= 3
        before = np.hypot(base[cheek, 0], base[cheek, 1] - axis_y)
        after = np.hypot(base[cheek, 0] + d[cheek, 0], base[cheek, 1] + d[cheek, 1] - axis_y)
        assert (after - before).mean() > 0.004


def test_tongue_out_sticks_out_past_the_lips(head):
    base, d = head["base"], _delta(head, "tongueOut")
    tongue = head["groups"]["tongue"]
    assert base[tongue, 1].min() > base[_lips(head), 1].min()           # inside while neutral
    out = base + d
    assert out[tongue, 1].min() < base[_lips(head), 1].min() - 0.01     # > 1 cm past the lips
    assert d[tongue, 1].mean() < -0.02


def test_nose_sneer_lifts_that_side_of_the_nose(head):
    base, d = head["base"], _delta(head, "noseSneerLeft")
    nose = head["groups"]["nose"]
    left = nose[base[nose, 0] > 0.005]
    assert d[left, 2].mean() > 0.002


# ---------------------------------------------------------------- colours, two heads, the asset

def test_two_heads_with_their_own_materials():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    a = demo_head.build_head("A", skin=(0.8, 0.5, 0.4, 1.0))
    b = demo_head.build_head("B", skin=(0.3, 0.2, 0.1, 1.0))
    try:
        assert a.name == "A" and b.name == "B"
        assert a.data.materials[0].name == "A_Skin" and b.data.materials[0].name == "B_Skin"
        assert tuple(b.data.materials[0].diffuse_color)[:3] == pytest.approx((0.3, 0.2, 0.1))
        assert tuple(a.data.materials[0].diffuse_color)[:3] == pytest.approx((0.8, 0.5, 0.4))
        names = {m.name for m in a.data.materials} | {m.name for m in b.data.materials}
        assert len(names) == 2 * len(a.data.materials)
        # the shoulders follow the head's location, never its rotation
        body = bpy.data.objects["B_Body"]
        b.location = (0.5, 0.2, 0.1)
        b.rotation_euler = (0.0, 0.0, 0.6)
        bpy.context.view_layer.update()
        assert tuple(body.matrix_world.translation) == pytest.approx((0.5, 0.2, 0.1))
        assert tuple(body.matrix_world.to_euler()) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_build_is_deterministic(head):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    again = _extract(demo_head.build_head())
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for name in head["names"]:
        assert np.array_equal(again["keys"][name], head["keys"][name]), name


def test_body_and_materials(head):
    assert head["body"], "the shoulders must copy the head's location and carry no keys"
    for part in ("Skin", "Lips", "Mouth", "Teeth", "Tongue", "Sclera", "Iris", "Pupil", "Brow"):
        assert f"DemoHead_{part}" in head["materials"]
    col = head["materials"]
    lum = {k: sum(v[:3]) for k, v in col.items()}
    # what Workbench shows in MATERIAL colour mode: a dark mouth and pupils, white sclera and teeth
    assert lum["DemoHead_Mouth"] < 0.5 and lum["DemoHead_Pupil"] < 0.2
    assert lum["DemoHead_Sclera"] > 2.5 and lum["DemoHead_Teeth"] > 2.4
    assert col["DemoHead_Lips"] != col["DemoHead_Skin"]


def test_shipped_asset_loads_with_the_keys_and_matches_the_script(head):
    assert ASSET.is_file(), f"{ASSET} missing: run python scripts/demo_head.py"
    assert ASSET.stat().st_size < 1_500_000
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        bpy.ops.wm.open_mainfile(filepath=str(ASSET), load_ui=False)
        obj = bpy.data.objects["DemoHead"]
        shipped = _extract(obj)
        assert shipped["names"] == ["Basis", *ARKIT_NAMES]
        assert "DemoHead_Body" in bpy.data.objects
        assert tuple(obj.location) == (0.0, 0.0, 0.0)
        stale = [n for n in shipped["names"]
                 if not np.allclose(shipped["keys"][n], head["keys"][n], atol=1e-6)]
        assert not stale, f"assets/demo_head.blend is stale ({stale[:3]}...): run python scripts/demo_head.py"
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
