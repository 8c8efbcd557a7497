"""FACEGOOD's real recording as ARKit curves (training/facegood.py): the table's mapping, the timing,
the ranges, the held-out split, and the real-mouth check on a short slice of the shipped model."""

import numpy as np
import pytest

from model_runtime.channels import CHANNELS, MOUTH_JAW, NUM_CHANNELS
from model_runtime.paths import ASSETS
from model_runtime.timebase import SAMPLE_RATE, frame_count, resample_curves
from training import facegood as F
from training.metrics import pearson


@pytest.fixture(scope="module")
def data():
    if not F.available():
        pytest.skip(f"FACEGOOD data absent ({F.DATA}): the real-mouth tests need SHARED/data/facegood")
    return {t: F.load_take(t) for t in F.takes()}


def col(name):
    return CHANNELS.index(name)


def test_table_is_read_as_facegood_wrote_it(data):
    m = F.mapping()
    assert m["jawOpen"] == ("mouth_stretch_c",)
    assert set(m["mouthFunnel"]) == {"mouth_funnel_dl", "mouth_funnel_dr", "mouth_funnel_ul", "mouth_funnel_ur"}
    assert m["mouthPucker"] == ("mouth_pucker_l", "mouth_pucker_r")
    assert m["mouthRollUpper"] == ("mouth_suck_ul", "mouth_suck_ur")
    assert m["mouthPressLeft"] == ("mouth_press_l",) and m["mouthPressRight"] == ("mouth_press_r",)
    # Eyes, brows, cheeks and nose are "Invalid" in the table: never mapped.
    assert not [n for n in m if n.startswith(("eye", "brow", "cheek", "nose"))]
    assert F.parse_expression("max(a, b_c)") == ["a", "b_c"] and F.parse_expression("") == []
    with pytest.raises(ValueError):
        F.parse_expression("0.5*mouth_oh_c")


def test_mapping_yields_at_least_ten_moving_mouth_channels(data):
    covered = F.covered()
    assert len(covered) >= 10, covered
    assert set(covered) <= set(MOUTH_JAW)
    for name in ("jawOpen", "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthPressLeft", "mouthLowerDownLeft"):
        assert name in covered
    # mouthClose is mapped (to mouth_chew_c) but never moves here; head channels are never covered.
    assert "mouthClose" in F.mapping() and "mouthClose" not in covered
    assert not F.mask()[[col(n) for n in ("headYaw", "headPitch", "headRoll")]].any()
    # Every covered channel really moves in the takes together, and the uncovered ones do not.
    allc = np.concatenate([a for _, a, _ in data.values()])
    assert (allc[:, F.mask()].std(0) > F.MOVE_FLOOR).all()
    assert (allc[:, ~F.mask()].std(0) <= F.MOVE_FLOOR).all()


def test_takes_are_zero_to_one_and_as_long_as_their_audio(data):
    assert len(data) == 7
    for name, (audio, arkit, mask) in data.items():
        seconds = len(audio) / SAMPLE_RATE
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
        assert arkit.dtype == np.float32 and arkit.shape == (frame_count(seconds, F.FPS), NUM_CHANNELS)
        assert abs(len(arkit) - seconds * F.FPS) <= 1, name
        assert len(F._rig_values(name)) == pytest.approx(seconds * F.SRC_FPS, abs=1)  # the source too
        assert arkit.min() >= 0.0 and arkit.max() <= 1.0
        assert arkit[:, col("jawOpen")].max() > 0.5  # 0..1, not 0..0.01: the scale is right
        assert mask.dtype == bool and mask.shape == (NUM_CHANNELS,)
        assert not arkit[:, [c for c, n in enumerate(CHANNELS) if n not in F.mapping()]].any()


def test_jaw_follows_the_loudness_of_the_voice(data):
    txt = (F.DATA / "bsname.txt").read_text().split()[1:]  # the rig's other list, in another order
    for name, (audio, arkit, _) in data.items():
        env = F.loudness(audio, len(arkit))
        jaw = arkit[:, col("jawOpen")]
        assert pearson(env, jaw) > 0.3, name
        # The check can fail: 0.4 s late, or the column bsname.txt's order would have picked, falls below.
        assert pearson(env[:-10], jaw[10:]) < 0.3, name
        wrong = resample_curves(F._rig_values(name)[:, [txt.index("mouth_stretch_c")]], F.SRC_FPS, F.FPS, len(arkit))
        assert pearson(env, wrong[:, 0]) < 0.3, name
        # Timing: the best of -5..5 frames lies within a frame of 0 (no offset, no 30-vs-25 fps drift).
        lags = list(F.LAGS)
        best = lags[int(np.argmax([pearson(env[max(0, -k):len(env) - max(0, k)], jaw[max(0, k):len(jaw) + min(0, k)])
                                   for k in lags]))]
        assert abs(best) <= 1, (name, best)


def test_held_out_takes_leave_every_covered_channel_to_training(data):
    assert F.HELD_OUT and set(F.HELD_OUT) <= set(F.takes()) and len(F.HELD_OUT) < len(F.takes())
    train = np.concatenate([a for t, (_, a, _) in data.items() if t not in F.HELD_OUT])
    assert (train[:, F.mask()].std(0) > F.MOVE_FLOOR).all()
    # The per-take mask drops what the artist left flat in a take (pucker on 1114_3_16), never adds.
    for t in F.takes():
        per_take = F.load_take(t, per_take=True)[2]
        assert not (per_take & ~F.mask()).any()
    assert not F.load_take("1114_3_16", per_take=True)[2][col("mouthPucker")]


def test_score_finds_a_known_lag_and_spread():
    rng = np.random.default_rng(0)
    n = 600
    real = np.zeros((n, NUM_CHANNELS), np.float32)
    real[:, col("jawOpen")] = np.convolve(rng.random(n + 9), np.ones(10) / 10, "valid")[:n]
    real[:, col("mouthFunnel")] = np.convolve(rng.random(n + 9), np.ones(10) / 10, "valid")[:n]
    net = np.zeros_like(real)
    net[2:, col("jawOpen")] = 0.5 * real[:-2, col("jawOpen")]  # half the spread, two frames late
    net[:, col("mouthFunnel")] = 1 - real[:, col("mouthFunnel")]  # the opposite shape
    scored = np.zeros(NUM_CHANNELS, bool)
    scored[[col("jawOpen"), col("mouthFunnel")]] = True
    audio = (0.1 * rng.standard_normal(n * 640)).astype(np.float32)
    rep = F.score([("synthetic", audio, net, real, np.ones(n, bool), scored)])
    assert rep["lag_frames"] == 2
    jaw = rep["channels"]["jawOpen"]
    assert jaw["r_best_lag"] > 0.99 and jaw["r"] < 0.95
    assert jaw["spread"] == pytest.approx(0.5, abs=0.05)  # the first two frames are 0
    assert rep["channels"]["mouthFunnel"]["r"] < -0.99
    assert set(rep["channels"]) == {"jawOpen", "mouthFunnel"}


def test_evaluate_on_a_short_slice_gives_finite_numbers(data):
    rep = F.evaluate(ASSETS / "duet_dualtalk.onnx", F.HELD_OUT, max_seconds=12)
    assert rep["takes"] == list(F.HELD_OUT) and rep["seconds"] == pytest.approx(12 * len(F.HELD_OUT))
    assert rep["lag_frames"] in F.LAGS and all(np.isfinite(v) for v in rep["lag_r"].values())
    assert "jawOpen" in rep["channels"] and len(rep["channels"]) >= 5
    for name, c in rep["channels"].items():
        assert all(np.isfinite(c[k]) for k in ("r", "r_best_lag", "spread")), name
        assert c["spread"] > 0 and set(c["takes"]) <= set(F.HELD_OUT)
    assert np.isfinite(rep["loudness_jaw_r"]) and np.isfinite(rep["rounding_r"])
    assert "| jawOpen |" in F.format_report(rep)


def test_training_windows_supervise_only_the_mouth_the_take_moves(data):
    import torch

    from training.dataset import FacegoodWindows, WindowConfig

    names = [t for t in F.takes() if t not in F.HELD_OUT]
    ds = FacegoodWindows(names, 6, seed=0, win_cfg=WindowConfig(level_norm=True, gain_db=(-40.0, 0.0),
                                                                 room_prob=0.5, mains_prob=0.5))
    batch = torch.utils.data.default_collate([ds[k] for k in range(len(ds))])
    assert batch["self_mel"].shape == (6, 800, 80) and batch["target"].shape == (6, 200, NUM_CHANNELS)
    mask = batch["channels"]
    covered = torch.from_numpy(F.mask().astype(np.float32))
    assert (mask <= covered).all() and mask.sum(1).min() >= 8  # a subset of the rig's mouth, per take
    assert mask[:, [col(n) for n in CHANNELS if n not in MOUTH_JAW]].sum() == 0
    assert batch["motion_known"].sum() == 0 and batch["sway"].abs().sum() == 0
    assert (batch["phones"] == -100).all()  # Chinese: no alignment, no phone loss
    # The target is the real mouth where the window lies in a take.
    assert batch["target"][:, :, col("jawOpen")].max() > 0.2
