import math
import time
from dataclasses import replace

import numpy as np
import pytest

from model_runtime.attention import AttentionConfig, apply_attention, attend, circle_positions
from model_runtime.channels import CHANNELS, HEAD_NAMES, index_of

FPS = 25.0
CFG = AttentionConfig()
# No drift, one share for everyone: the settled angles are then exact.
STILL = replace(CFG, drift_rad=(0.0, 0.0), head_share_spread=0.0)
SHARE = CFG.head_share
A, B, C = 0, 1, 2


def frames(seconds):
    return int(round(seconds * FPS))


def geometric(p_from, f_from, p_to):
    """(yaw + own left, pitch + chin down) from the bearing angles, not the module's basis."""
    d = np.asarray(p_to, float) - np.asarray(p_from, float)
    yaw = math.atan2(d[1], d[0]) - math.atan2(f_from[1], f_from[0])  # counter-clockwise from above = left
    yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
    return yaw, -math.atan2(d[2], math.hypot(d[0], d[1]))


def triangle(c_x=1.5):
    """A faces -Y, B faces A (+Y), C off to one side a little higher, facing -X."""
    pos = np.array([[0.0, 0.0, 1.6], [0.5, -3.0, 1.6], [c_x, -1.5, 1.8]])
    fwd = np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [-1.0 if c_x > 0 else 1.0, 0.0, 0.0]])
    return pos, fwd


def talk(n, seconds, *turns):
    """(n, T) speaking from (character, start s, end s) stretches."""
    s = np.zeros((n, frames(seconds)), bool)
    for k, a, b in turns:
        s[k, frames(a):frames(b)] = True
    return s


def first_reach(x, start, frac=0.5):
    """First frame from `start` where x has covered `frac` of its way from x[start-1] to x[-1]."""
    x0, x1 = x[start - 1], x[-1]
    done = (x[start:] - x0) / (x1 - x0) >= frac
    return start + int(np.argmax(done)) if done.any() else None


def test_listeners_turn_toward_the_speaker_by_a_share_of_the_angle_and_follow_the_next():
    pos, fwd = triangle()
    speaking = talk(3, 16, (C, 1, 6), (A, 10, 15))
    out = attend(pos, fwd, speaking, FPS, seed=0, cfg=STILL)
    assert np.abs(out[:, : frames(1)]).max() < 1e-6  # nobody has spoken: everyone looks ahead

    for listener in (A, B):
        yaw, pitch = geometric(pos[listener], fwd[listener], pos[C])
        held = out[listener, frames(3):frames(9)]  # settled, and kept through the silence after C
        assert held[:, 0] == pytest.approx(SHARE * yaw, abs=0.01)
        assert held[:, 1] == pytest.approx(SHARE * pitch, abs=0.01)
        assert held[:, 3] == pytest.approx((1 - SHARE) * yaw, abs=0.01)  # the eyes take the rest
        assert held[:, 4] == pytest.approx(-(1 - SHARE) * pitch, abs=0.01)  # + up
        assert pitch < 0 and held[:, 1].max() < 0  # C is higher: chin up
    assert out[A, frames(4), 0] > 0.3 > -0.2 > out[B, frames(4), 0]  # C is on A's left, B's right

    # A takes the floor: B and C turn to A.
    for listener in (B, C):
        yaw, _ = geometric(pos[listener], fwd[listener], pos[A])
        assert out[listener, frames(12):frames(15), 0] == pytest.approx(SHARE * yaw, abs=0.01)
    assert out[C, frames(12), 0] < -0.3  # A is on C's right

    # The eyes lead: they get half-way to where they settle before the head does, at C's turn
    # (from ahead) and at A's (from C).
    for change, listeners in ((frames(1), (A, B)), (frames(10), (B,))):
        for listener in listeners:
            head, eye = (out[listener, :change + frames(2), k] for k in (0, 3))
            t_eye, t_head = first_reach(eye, change), first_reach(head, change)
            assert t_eye + 2 <= t_head, (listener, t_eye, t_head)
            assert t_eye <= change + frames(CFG.reaction_s[1] + CFG.saccade_s) + 1


def test_listeners_react_a_few_hundred_ms_into_a_turn_with_seeded_delays():
    pos, fwd = triangle()
    starts = [2.0 + 3 * k for k in range(16)]
    speaking = talk(3, 50, *[(C if k % 2 else A, s, s + 2.5) for k, s in enumerate(starts)])
    out = attend(pos, fwd, speaking, FPS, seed=4, cfg=STILL)
    gaze = out[B, :, 0] + out[B, :, 3]
    delays = []
    for s in starts[1:]:
        f = frames(s)
        moved = np.flatnonzero(np.abs(gaze[f:f + frames(1)] - gaze[f - 1]) > 0.02)
        delays.append(moved[0] / FPS)
    lo, hi = CFG.reaction_s
    assert min(delays) >= lo - 1 / FPS and max(delays) <= hi + 1 / FPS, delays
    assert np.std(delays) > 0.03  # drawn per turn, not one fixed lag


def test_mirror_side_flips_the_turn():
    speaking = talk(3, 6, (C, 0.5, 5.5))
    right = attend(*triangle(1.5), speaking, FPS, seed=0, cfg=STILL)[:, frames(3)]
    left = attend(*triangle(-1.5), speaking, FPS, seed=0, cfg=STILL)[:, frames(3)]
    assert right[A, 0] > 0.2 and left[A, 0] == pytest.approx(-right[A, 0], abs=1e-4)  # A sits on the mirror line
    assert right[B, 0] < -0.2 and left[B, 0] > 0.2


def test_a_backchannel_turns_nobody():
    pos, fwd = triangle()
    base = talk(3, 10, (C, 1, 5))
    with_mm = base.copy()
    with_mm[B, frames(6):frames(6.3)] = True  # "mm hmm" in the silence after C
    with_mm[A, frames(3):frames(3.3)] = True  # and one while C talks
    a, b = (attend(pos, fwd, s, FPS, seed=2) for s in (base, with_mm))
    np.testing.assert_array_equal(a, b)

    # From silence: a short stretch draws no one, a turn-length one does.
    short = attend(pos, fwd, talk(3, 4, (C, 1, 1.3)), FPS, seed=0, cfg=STILL)
    assert np.abs(short).max() < 1e-6
    long = attend(pos, fwd, talk(3, 4, (C, 1, 1.8)), FPS, seed=0, cfg=STILL)
    assert np.abs(long[A, frames(3), 0]) > 0.2


def test_a_moving_speaker_is_followed():
    n = frames(12)
    pos = np.zeros((2, n, 3))
    pos[:, :, 2] = 1.6
    pos[1, :, 0] = np.linspace(1.5, -1.5, n)  # B walks across in front of A
    pos[1, :, 1] = -3.0
    fwd = np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    out = attend(pos, fwd, talk(2, 12, (1, 0.5, 12)), FPS, seed=0, cfg=STILL)
    expected = np.array([geometric(pos[0, t], fwd[0], pos[1, t])[0] for t in range(n)])
    live = slice(frames(1.5), n)
    assert expected[live].max() > 0.3 and expected[live].min() < -0.3  # it really crosses
    np.testing.assert_allclose(out[0, live, 0], SHARE * expected[live], atol=0.02)
    np.testing.assert_allclose(out[0, live, 0] + out[0, live, 3], expected[live], atol=0.02)


@pytest.mark.parametrize("where", [(0.0, 2.0, 1.6), (2.0, 0.3, 1.6), (-2.0, 0.0, 1.6), (0.3, -1.0, 4.0)])
def test_nothing_turns_further_than_a_person_would(where):
    """Behind, beside (left and right), far above: head and eyes stay within their ranges."""
    pos = np.array([[0.0, 0.0, 1.6], where])
    fwd = np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    out = attend(pos, fwd, talk(2, 20, (1, 0.5, 19.5)), FPS, seed=3)  # drift and overshoot included
    head, eye = out[0], out[0]
    assert np.abs(head[:, 0]).max() <= CFG.head_yaw_max_rad + 1e-6
    assert np.abs(head[:, 1]).max() <= CFG.head_pitch_max_rad + 1e-6
    assert np.abs(eye[:, 3]).max() <= CFG.eye_yaw_max_rad + 1e-6
    assert np.abs(eye[:, 4]).max() <= CFG.eye_pitch_max_rad + 1e-6
    yaw, pitch = geometric(pos[0], fwd[0], pos[1])
    # Out of comfortable reach: the head goes to its limit (not a share) and the eyes to theirs.
    if abs(yaw) > CFG.head_yaw_max_rad + CFG.eye_yaw_max_rad:
        assert np.abs(head[frames(5):, 0]).min() > CFG.head_yaw_max_rad - 0.06
    if abs(pitch) > CFG.head_pitch_max_rad + CFG.eye_pitch_max_rad:
        assert head[frames(5):, 1].max() < -CFG.head_pitch_max_rad + 0.05  # looking up


def test_same_seed_same_take_other_seed_other_take_same_mean_turn():
    pos, fwd = triangle()
    speaking = talk(3, 60, *[(C if k % 2 else A, 3 * k, 3 * k + 2.5) for k in range(20)])
    a, b, c = (attend(pos, fwd, speaking, FPS, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01
    # Reaction delays differ: B's head starts moving at other frames.
    onset = lambda x: np.flatnonzero(np.abs(np.diff(x[B, :, 3])) > 0.05)
    assert not np.array_equal(onset(a), onset(c))
    while_c = speaking[C] & ~speaking[A]
    mean_a, mean_c = a[B, while_c, 0].mean(), c[B, while_c, 0].mean()
    assert abs(mean_a) > 0.15
    assert mean_c == pytest.approx(mean_a, rel=0.15)


def test_speaker_moves_its_gaze_among_listeners_at_pauses_and_keeps_a_lone_listener():
    pos, fwd = circle_positions(3)
    # C talks for 40 s in 2 s phrases with 0.4 s pauses.
    turns = [(C, 2.4 * k, 2.4 * k + 2.0) for k in range(17)]
    out = attend(pos, fwd, talk(3, 41, *turns), FPS, seed=1, cfg=STILL)
    gaze = out[C, :, 0] + out[C, :, 3]
    side = np.sign(gaze[frames(0.5):])
    shifts = np.flatnonzero(np.diff(side) != 0) + frames(0.5) + 1
    assert len(shifts) >= 5  # it looks at both listeners, again and again
    pauses = [frames(2.4 * k + 2.0) for k in range(17)]
    for s in shifts:  # each shift comes at a phrase boundary (within the saccade)
        assert min(abs(s - p) for p in pauses) <= 2, s

    pos2, fwd2 = circle_positions(2)
    lone = attend(pos2, fwd2, talk(2, 41, *[(1, a, b) for _, a, b in turns]), FPS, seed=1, cfg=STILL)
    assert np.abs(lone).max() < 1e-6  # the one listener sits straight ahead and stays there


def test_two_in_a_circle_face_each_other_and_nobody_turns():
    pos, fwd = circle_positions(2)
    np.testing.assert_allclose(pos[0, :2], -pos[1, :2])
    np.testing.assert_allclose(fwd[0], -fwd[1])
    speaking = talk(2, 30, *[(k % 2, 3 * k, 3 * k + 2.5) for k in range(10)])
    still = attend(pos, fwd, speaking, FPS, seed=0, cfg=STILL)
    assert np.abs(still).max() < 1e-6
    live = attend(pos, fwd, speaking, FPS, seed=0)
    assert np.abs(live[..., 0]).max() < 5 * CFG.drift_rad[0]  # only the drift moves the head
    assert np.abs(live[..., 0].mean()) < 0.02

    one_pos, one_fwd = circle_positions(1)
    assert one_pos.shape == (1, 3) and one_fwd.tolist() == [[0.0, -1.0, 0.0]]
    pos3, fwd3 = circle_positions(3)
    dist = [np.linalg.norm(pos3[i] - pos3[j]) for i, j in ((0, 1), (1, 2), (0, 2))]
    assert dist == pytest.approx([math.sqrt(3)] * 3)
    np.testing.assert_allclose(pos3[:, 2], 1.6)
    np.testing.assert_allclose(np.hypot(pos3[:, 0], pos3[:, 1]), 1.0)
    for i in range(3):  # facing the centre
        np.testing.assert_allclose(fwd3[i, :2], -pos3[i, :2], atol=1e-12)


EYES = {n: CHANNELS.index(n) for n in CHANNELS if n.startswith("eyeLook")}


def test_apply_adds_eye_angles_to_the_gaze_there_and_offsets_the_head():
    rng = np.random.default_rng(0)
    w = rng.random((6, 55)).astype(np.float32) * 0.5
    w[:, index_of(HEAD_NAMES)] = rng.normal(0, 0.1, (6, 3))
    for name in EYES:
        w[:, EYES[name]] = 0.0
    w[:, EYES["eyeLookInLeft"]] = 0.3  # already looking to its right
    w[:, EYES["eyeLookOutRight"]] = 0.3
    w[:, EYES["eyeLookDownLeft"]] = 0.2
    w[:, EYES["eyeLookDownRight"]] = 0.2
    turn = np.zeros((6, 5), np.float32)
    turn[:, :3] = rng.normal(0, 0.2, (6, 3))
    turn[:, 3] = 0.5 * CFG.eye_yaw_max_rad  # half the range to its left
    turn[:, 4] = 0.5 * CFG.eye_pitch_max_rad  # half up
    turn[5, 3:] = [10.0, -10.0]  # far out of range
    out = apply_attention(w, turn)

    head = index_of(HEAD_NAMES)
    np.testing.assert_array_equal(out[:, head], w[:, head] + turn[:, :3])
    others = [i for i in range(52) if i not in EYES.values()]
    np.testing.assert_array_equal(out[:, others], w[:, others])
    r = out[:5]
    assert r[:, EYES["eyeLookOutLeft"]] == pytest.approx(0.2, abs=1e-6)  # -0.3 + 0.5
    assert r[:, EYES["eyeLookInRight"]] == pytest.approx(0.2, abs=1e-6)
    assert r[:, EYES["eyeLookInLeft"]] == pytest.approx(0.0) and r[:, EYES["eyeLookOutRight"]] == pytest.approx(0.0)
    assert r[:, EYES["eyeLookUpLeft"]] == pytest.approx(0.3, abs=1e-6)  # -0.2 + 0.5
    assert r[:, EYES["eyeLookDownRight"]] == pytest.approx(0.0)
    assert out[5, EYES["eyeLookOutLeft"]] == 1.0 and out[5, EYES["eyeLookDownLeft"]] == 1.0
    assert out[:, list(EYES.values())].min() >= 0 and out[:, list(EYES.values())].max() <= 1
    with pytest.raises(ValueError):
        apply_attention(w, turn[:5])


def test_a_long_cast_is_fast():
    n, t_len = 4, 15000  # 4 characters x 10 minutes at 25 fps
    rng = np.random.default_rng(0)
    speaking = np.zeros((n, t_len), bool)
    t = 0
    while t < t_len:
        length = int(rng.integers(5, 250))
        speaking[rng.integers(n), t:t + length] = True
        t += length + int(rng.integers(0, 40))
    pos, fwd = circle_positions(n)
    moving = pos[:, None, :] + 0.05 * np.sin(np.arange(t_len) / 50.0)[None, :, None]
    start = time.perf_counter()
    out = attend(moving, np.repeat(fwd[:, None, :], t_len, 1), speaking, FPS, seed=0)
    seconds = time.perf_counter() - start
    print(f"attend 4 x 15000 frames: {seconds:.3f} s")
    assert out.shape == (n, t_len, 5) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out[..., 0]).max() > 0.1  # it did turn people
    assert seconds < 5.0
