"""The training objective and loop (training/train.py) on known inputs."""

import json
import subprocess
import sys

import pytest
import torch
from train_helpers import needs_flite

from model_runtime.channels import CHANNELS, index_of
from model_runtime.config import DualTalkConfig
from model_runtime.model_file import load_checkpoint
from model_runtime.net import DualTalk
from model_runtime.paths import ROOT, runtime_pythonpath
from training.train import TrainConfig, loss_fn, lr_at


def test_loss_groups_and_velocity_on_known_inputs():
    tcfg = TrainConfig()
    target = torch.zeros(1, 4, len(CHANNELS))
    pred = target.clone()
    pred[0, :, index_of(("jawOpen",))] = 0.5  # constant offset: group error, no velocity error
    valid = torch.ones(1, 4)
    total, parts = loss_fn(pred, target, valid, tcfg, torch.ones(len(CHANNELS)))
    n_mouth = len([c for c in CHANNELS if c.startswith(("jaw", "mouth", "cheek", "tongue", "nose"))])
    assert abs(parts["mouth_jaw"] - 0.25 / n_mouth) < 1e-7
    assert parts["eyes_brows"] == 0.0 and parts["head"] == 0.0 and parts["velocity"] == 0.0
    pred[0, 2, index_of(("headYaw",))] = 0.3  # a one-frame spike: head error and velocity error
    valid[0, 3] = 0.0  # padding frames never count
    _, parts = loss_fn(pred, target, valid, tcfg, torch.ones(len(CHANNELS)))
    assert abs(parts["head"] - 0.09 / (3 * 3)) < 1e-7
    assert parts["velocity"] > 0.0


def test_schedule_warms_up_then_decays():
    tcfg = TrainConfig(lr=1e-3, warmup_steps=10)
    lrs = [lr_at(s, tcfg, 100) for s in range(100)]
    assert lrs[0] < lrs[9] == max(lrs) and lrs[-1] < 0.1 * max(lrs)


def test_a_few_steps_fit_one_batch():
    """The network, the loss and the optimiser learn: 40 steps on one batch cut the loss."""
    torch.manual_seed(0)
    cfg = DualTalkConfig(width=32, interaction_layers=1, lstm_layers=1, dropout=0.0)
    model = DualTalk(cfg)
    b, t = 2, 40
    mel = torch.randn(b, 4 * t, 80) * 4 - 6
    target = torch.rand(b, t, 55) * 0.5
    target[..., 52:] = 0.0
    batch = (mel, mel.flip(1), torch.rand(b, t, 55), torch.ones(b, t, 1), torch.randn(b, t, 3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tcfg = TrainConfig()
    losses = []
    for _ in range(40):
        loss, _ = loss_fn(model(*batch), target, torch.ones(b, t), tcfg, torch.ones(55))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@needs_flite
def test_make_train_end_to_end_on_the_tiny_preset(tmp_path):
    """`python -m training.train` as `make train` runs it, on the tiny preset: data, training,
    ONNX export, evaluation through the runtime and the card, so a broken step cannot hide."""
    env = runtime_pythonpath()
    env["DUET_TRAIN_CACHE"] = str(tmp_path / "cache")
    out = tmp_path / "model"
    r = subprocess.run([sys.executable, "-m", "training.train", "--preset", "tiny", "--out", str(out),
                        "--fields", '{"vtlp": [0.95, 1.05]}'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"steps": 3' in r.stdout and "make train: done" in r.stdout, r.stdout[-2000:]
    onnx = out / "duet_dualtalk.onnx"
    assert onnx.is_file() and onnx.with_suffix(".pt").is_file()
    assert len(list((tmp_path / "cache" / "conv").glob("*/*.npz"))) == 4  # 2 train + 2 test conversations
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Scores on 2 held-out test conversations" in card and "speaker-only ablation" in card
    info = subprocess.run([sys.executable, "-m", "model_runtime", "info", "--model", str(onnx)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["trained"] is True and meta["model"] == str(onnx), meta
    _, ckpt = load_checkpoint(onnx.with_suffix(".pt"))
    assert ckpt["config"].width == 32 and ckpt["info"]["steps"] == 3
    assert list(ckpt["info"]["train"]["vtlp"]) == [0.95, 1.05]  # --fields reached the run


def test_fields_naming_no_train_config_field_are_refused(tmp_path):
    from training.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--preset", "tiny", "--out", str(tmp_path / "m"), "--fields", '{"spread_wieght": 16}'])
    assert exc.value.code == 2 and not (tmp_path / "m").exists()


def test_masked_channels_and_bilabial_frames_weigh_as_told():
    from training.train import ARPABET, CLOSURE_IDX, bilabial_frames

    b, t = 2, 10
    target = torch.zeros(b, t, 55)
    pred = torch.zeros(b, t, 55)
    pred[..., CLOSURE_IDX[0]] = 0.5  # an error on mouthClose only
    tcfg = TrainConfig(bilabial_weight=5.0, velocity_weight=0.0, channel_boost=1.0)
    valid, speaking, ones = torch.ones(b, t), torch.ones(b, t), torch.ones(55)
    base, _ = loss_fn(pred, target, valid, tcfg, ones, speaking)
    phones = torch.full((b, t), ARPABET.index("AA"))
    phones[:, 4] = ARPABET.index("M")
    bil = bilabial_frames(phones)
    assert bil[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    weighted, _ = loss_fn(pred, target, valid, tcfg, ones, speaking, bilabial=bil)
    assert float(weighted) == pytest.approx(float(base) * (7 + 3 * 5) / 10, rel=1e-5)
    mask = torch.ones(b, 55)
    mask[:, CLOSURE_IDX[0]] = 0  # a window that does not supervise mouthClose
    masked, _ = loss_fn(pred, target, valid, tcfg, ones, speaking, channels=mask)
    assert float(masked) == 0.0


def test_spread_loss_charges_a_muted_mouth_and_only_supervised_channels():
    from training.train import MOUTH_IDX, spread_error

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 50, len(CHANNELS), generator=g)
    valid = torch.ones(2, 50)
    jaw = index_of(("jawOpen",))[0]
    assert float(spread_error(target, target, valid, MOUTH_IDX)) == 0.0
    muted = target.clone()
    mean = target[..., jaw].mean(1, keepdim=True)
    muted[..., jaw] = mean + 0.5 * (target[..., jaw] - mean)  # the jaw at half its spread
    assert float(spread_error(muted, target, valid, MOUTH_IDX)) > 0.0
    shifted = target + 0.3  # a wrong mean is the MSE's business, not the spread's
    assert float(spread_error(shifted, target, valid, MOUTH_IDX)) == pytest.approx(0.0, abs=1e-6)
    head = target.clone()
    head[..., index_of(("headYaw",))] *= 3  # the head has its own term
    assert float(spread_error(head, target, valid, MOUTH_IDX)) == pytest.approx(0.0, abs=1e-6)
    mask = torch.ones(2, len(CHANNELS))
    mask[:, jaw] = 0  # a window that does not supervise the jaw
    assert float(spread_error(muted, target, valid, MOUTH_IDX, mask)) == pytest.approx(0.0, abs=1e-6)
    padded = valid.clone()
    padded[:, 25:] = 0
    late = muted.clone()
    late[:, :25] = target[:, :25]  # muted only in the padding: nothing to pay
    assert float(spread_error(late, target, padded, MOUTH_IDX)) == pytest.approx(0.0, abs=1e-6)
    # The gradient of the loss term pushes a muted channel outwards.
    pred = muted.clone().requires_grad_(True)
    tcfg = TrainConfig(spread_weight=8.0)
    with_spread, parts = loss_fn(pred, target, valid, tcfg, torch.ones(len(CHANNELS)))
    assert parts["spread"] > 0
    without, _ = loss_fn(muted, target, valid, TrainConfig(spread_weight=0.0), torch.ones(len(CHANNELS)))
    assert float(with_spread.detach()) == pytest.approx(float(without) + 8.0 * parts["spread"], rel=1e-5)


def test_head_spread_loss_charges_a_still_listener_apart_from_the_speaker():
    from training.train import HEAD_IDX, spread_error

    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 100, len(CHANNELS), generator=g) - 0.5
    valid = torch.ones(2, 100)
    speaking = torch.zeros(2, 100)
    speaking[:, :50] = 1  # speaks the first half, listens the second
    still = target.clone()
    still[:, 50:, HEAD_IDX] *= 0.3  # a listening head at a third of its spread
    louder = still.clone()
    louder[:, :50, HEAD_IDX] *= (2 - 0.3 ** 2) ** 0.5  # a livelier speaker makes up the whole-window std ...
    whole = spread_error(louder, target, valid, HEAD_IDX)
    listening = spread_error(louder, target, valid * (1 - speaking), HEAD_IDX)
    assert float(listening) > 10 * float(whole)  # ... but not the listening frames' std
    ones = torch.ones(len(CHANNELS))
    tcfg = TrainConfig(head_spread_weight=4.0, spread_weight=0.0)
    total, parts = loss_fn(still, target, valid, tcfg, ones, speaking)
    assert parts["head_spread"] > 0
    base, _ = loss_fn(still, target, valid, TrainConfig(spread_weight=0.0, head_spread_weight=0.0), ones, speaking)
    assert float(total) == pytest.approx(float(base) + 4.0 * parts["head_spread"], rel=1e-5)
    _, same = loss_fn(target, target, valid, tcfg, ones, speaking)
    assert same["head_spread"] == pytest.approx(0.0, abs=1e-6)
    # Too few listening frames for a spread: that half of the window does not count.
    short = speaking.clone()
    short[:, :95] = 1
    assert float(spread_error(still, target, valid * (1 - short), HEAD_IDX, min_frames=25)) == 0.0
    # A window that does not supervise the head (a FACEGOOD take) pays nothing.
    mouth_only = torch.ones(2, len(CHANNELS))
    mouth_only[:, HEAD_IDX] = 0
    _, masked = loss_fn(still, target, valid, tcfg, ones, speaking, channels=mouth_only)
    assert masked["head_spread"] == pytest.approx(0.0, abs=1e-6)


def test_head_spread_reaches_only_the_heads_own_layers():
    """The head spread term reruns the head on the decoder features held fixed: its gradient moves
    the head's output layers and nothing the mouth reads."""
    from model_runtime.config import DualTalkConfig
    from model_runtime.net.dualtalk import DualTalk
    from training.train import head_alone

    torch.manual_seed(0)
    model = DualTalk(DualTalkConfig(width=32, interaction_layers=1, lstm_layers=1))
    kept = {}
    model.synthesis.head.register_forward_hook(lambda m, i, o: kept.__setitem__("x", i[0]))
    b, t = 2, 60
    noise = torch.randn(b, t, 3)
    pred = model(torch.randn(b, 4 * t, 80), torch.randn(b, 4 * t, 80), torch.zeros(b, t, len(CHANNELS)),
                 torch.zeros(b, t, 1), noise)
    head = head_alone(model, kept, noise)
    assert torch.allclose(head, pred[..., -3:], atol=1e-6)  # the same angles, recomputed
    target = torch.rand(b, t, len(CHANNELS))
    speaking = torch.zeros(b, t)
    speaking[:, :30] = 1
    args = (pred, target, torch.ones(b, t))
    tcfg = TrainConfig(head_spread_weight=8.0, spread_weight=0.0, head_spread_frames=10)
    with_term, parts = loss_fn(*args, tcfg, torch.ones(len(CHANNELS)), speaking, head=head)
    without, _ = loss_fn(*args, TrainConfig(spread_weight=0.0, head_spread_weight=0.0), torch.ones(len(CHANNELS)),
                         speaking, head=head)
    assert parts["head_spread"] > 0
    # The same expressions on both sides cancel exactly: what is left is the head spread's gradient.
    grads = torch.autograd.grad(with_term - without, list(model.parameters()), allow_unused=True,
                                retain_graph=True)
    moved = {n for (n, _), g in zip(model.named_parameters(), grads) if g is not None and g.abs().sum() > 0}
    assert moved and moved <= {"synthesis.head.weight", "synthesis.head.bias",
                               "synthesis.sway.weight", "synthesis.sway.bias"}, moved
    assert "synthesis.sway.weight" in moved
    # Given pred's own head instead, the same term reaches the trunk: the test can tell the two apart.
    through, _ = loss_fn(*args, tcfg, torch.ones(len(CHANNELS)), speaking)
    grads = torch.autograd.grad(through - without, list(model.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for (n, _), g in zip(model.named_parameters(), grads)
               if n.startswith("synthesis.blocks"))


def test_initial_weights_may_lack_audio_blocks_but_nothing_else(tmp_path):
    """Experiments fine-tune a grown network from smaller weights: only the residual audio blocks
    may be missing, and they start as the identity; weights of another shape are refused."""
    from model_runtime.model_file import save_checkpoint
    from training.train import load_initial_weights

    small_cfg = dict(width=32, interaction_layers=1, lstm_layers=1)
    torch.manual_seed(0)
    small = DualTalk(DualTalkConfig(audio_blocks=0, **small_cfg)).eval()
    save_checkpoint(tmp_path / "small.pt", small, trained=False)
    grown = DualTalk(DualTalkConfig(audio_blocks=2, **small_cfg)).eval()
    load_initial_weights(grown, tmp_path / "small.pt")
    b, t = 1, 40
    args = (torch.randn(b, 4 * t, 80), torch.randn(b, 4 * t, 80), torch.zeros(b, t, len(CHANNELS)),
            torch.zeros(b, t, 1), torch.zeros(b, t, 3))
    with torch.no_grad():
        assert torch.allclose(grown(*args), small(*args), atol=1e-5)
    wider = DualTalk(DualTalkConfig(audio_blocks=2, width=48, interaction_layers=1, lstm_layers=1))
    with pytest.raises(ValueError, match=r"small\.pt: weights do not fit this network \(size mismatch") as err:
        load_initial_weights(wider, tmp_path / "small.pt")
    assert "\n" not in str(err.value)
