"""Backends, windowing, fps: the network as the runtime runs it (random weights: behaviour of
the plumbing, not of a trained model)."""

import numpy as np
import pytest

from model_runtime.audio import Track
from model_runtime.backends import OnnxBackend, TorchBackend
from model_runtime.export import random_inputs
from model_runtime.inference import Predictor, crossfade_weights, window_starts
from model_runtime.model_file import SHIPPED_MODEL
from model_runtime.timebase import frame_count
from tests.conftest import speechlike


@pytest.fixture(scope="module")
def backends(random_model):
    return OnnxBackend(random_model, "cpu"), TorchBackend(random_model, "cpu")


def test_backends_agree_on_the_same_weights(backends):
    onnx, torch_ = backends
    for frames in (37, 200, 263):  # the ONNX time axis is dynamic
        inputs = random_inputs(onnx.cfg, 3, frames, seed=frames)
        a, b = onnx.run(*inputs), torch_.run(*inputs)
        assert a.shape == (3, frames, 55)
        assert np.abs(a - b).max() <= 1e-4


def test_torch_on_cuda_agrees_with_the_cpu(random_model):
    """The GPU path runs the same network: skipped where there is no CUDA device (CI has none; the
    project runs it on a borrowed GPU machine)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    models = [random_model] + ([SHIPPED_MODEL.with_suffix(".pt")] if SHIPPED_MODEL.with_suffix(".pt").exists() else [])
    for model in models:
        cpu, gpu = TorchBackend(model, "cpu"), TorchBackend(model, "cuda")
        assert gpu.device == "cuda"
        inputs = random_inputs(cpu.cfg, 3, 263, seed=7)
        # cuDNN's convolutions may use TF32 on the GPU: agreement to a few thousandths, not bits.
        assert np.abs(cpu.run(*inputs) - gpu.run(*inputs)).max() <= 5e-3, model


def test_untrained_models_say_so(backends):
    for b in backends:
        assert b.trained is False and b.describe()["trained"] is False


def test_cpu_fallback_says_why(random_model):
    b = OnnxBackend(random_model, "auto")
    if b.device == "cuda":
        pytest.skip("this machine runs ONNX on CUDA")
    assert b.provider == "CPUExecutionProvider" and b.notes and "CPU" in b.notes[0]


def test_window_starts_cover_and_end_flush():
    assert window_starts(150, 200, 40) == [0]
    starts = window_starts(1000, 200, 40)
    assert starts[0] == 0 and starts[-1] == 800 and all(b - a <= 160 for a, b in zip(starts, starts[1:]))
    w = crossfade_weights(200, 40, True, True)
    assert w[0] < 0.05 and w[100] == 1.0 and w[-1] < 0.05


def _inputs(pred, seconds, seed):
    self_in, r = pred._frame_inputs(speechlike(seconds, seed=seed), frame_count(seconds, 25))
    partner_in, _ = pred._frame_inputs(speechlike(seconds, seed=seed + 1, f0=220), frame_count(seconds, 25))
    n = frame_count(seconds, 25)
    motion = np.random.default_rng(seed).random((n, 55), dtype=np.float32) * 0.3
    return self_in, partner_in, r, motion, np.ones((n, 1), np.float32), n


def test_windowed_run_equals_a_single_pass_when_the_clip_fits(backends):
    pred = Predictor(backends[0])
    self_in, partner_in, r, motion, known, n = _inputs(pred, 6.0, 3)  # 150 frames < 200
    sway = pred.sway_for(0, n)
    single = backends[0].run(self_in[None], partner_in[None], motion[None], known[None], sway[None])[0]
    windowed = pred.run_frames(self_in, partner_in, r, motion, known, n, sway=sway)
    np.testing.assert_allclose(windowed, single, atol=1e-6)


def test_no_seam_at_window_joins(backends):
    pred, run = Predictor(backends[0]), backends[0].run
    self_in, partner_in, r, motion, known, n = _inputs(pred, 40.0, 5)  # 1000 frames
    sway = pred.sway_for(0, n)
    single = run(self_in[None], partner_in[None], motion[None], known[None], sway[None])[0]  # one pass, no joins
    faded = pred.run_frames(self_in, partner_in, r, motion, known, n, window=200, overlap=40, sway=sway)
    # Control: the same windows butted together without cross-fade, the seam a naive runner leaves.
    hard = np.concatenate([run(self_in[None, s * r:(s + 160) * r], partner_in[None, s * r:(s + 160) * r],
                               motion[None, s:s + 160], known[None, s:s + 160], sway[None, s:s + 160])[0]
                           for s in range(0, 960, 160)])
    joins = range(160, 960, 160)
    # Windows see less context than the single pass, so they differ from it; a seam is a sudden
    # change of that difference from one frame to the next.
    jump = lambda y: np.abs(np.diff(y[:960] - single[:960], axis=0)).max(axis=1)
    hard_seam = min(jump(hard)[j - 1] for j in joins)
    assert hard_seam > 20 * np.median(jump(faded)), "control: butted windows show a seam"
    assert jump(faded).max() < 0.1 * hard_seam  # nowhere, joins included, a jump like that


@pytest.mark.parametrize("fps", [23.976, 24, 25, 29.97, 30, 60])
def test_predict_gives_the_right_frame_count_at_any_fps(backends, fps):
    pred = Predictor(backends[0])
    track = Track(speechlike(7.3), "self.wav")
    res = pred.predict(track, Track(speechlike(7.3, seed=9), "partner.wav"), None, fps)
    assert res.weights.shape == (frame_count(7.3, fps), 55)
    assert res.weights[:, :52].min() >= 0.0 and res.weights[:, :52].max() <= 1.0


def test_partner_motion_unknown_is_its_own_mode(backends):
    pred = Predictor(backends[0])
    self_in, partner_in, r, motion, _, n = _inputs(pred, 4.0, 7)
    unknown = pred.run_frames(self_in, partner_in, r, np.zeros_like(motion), np.zeros((n, 1), np.float32), n)
    still = pred.run_frames(self_in, partner_in, r, np.zeros_like(motion), np.ones((n, 1), np.float32), n)
    assert np.abs(unknown - still).max() > 1e-3  # "unknown" is not a still face


def test_attention_knows_when_things_happen():
    """A change in the attended stream at frame 100 moves a steep head's output near frame 100,
    not 60 frames away; a zero-slope head reaches the whole window alike. Without the time bias
    both would be flat: content alone cannot place a partner's nod in time."""
    import torch

    from model_runtime.net.layers import MultiHeadAttention

    torch.manual_seed(0)
    x, context = torch.randn(1, 200, 16), torch.randn(1, 200, 16)
    bumped = context.clone()
    bumped[0, 100] += 5.0
    reach = {}
    for slope in (0.5, 0.0):
        attn = MultiHeadAttention(16, 1, (slope,)).eval()
        with torch.no_grad():
            change = (attn(x, bumped) - attn(x, context)).norm(dim=-1)[0]
        reach[slope] = (float(change[98:103].mean()), float(change[150:].mean()))
    near, far = reach[0.5]
    assert near > 50 * far, reach
    near, far = reach[0.0]
    assert near < 5 * far, reach


def test_head_channels_are_radians_at_the_graph_edges():
    """The network works in head units inside; what goes in and comes out stays radians."""
    import torch

    from model_runtime.config import DualTalkConfig
    from model_runtime.net.synthesis import ExpressiveSynthesis

    cfg = DualTalkConfig()
    synth = ExpressiveSynthesis(cfg).eval()
    with torch.no_grad():
        synth.head.weight.zero_()
        synth.head.bias.zero_()
        synth.head.bias[cfg.num_weights:] = 1.0  # one head unit before the bound
        own, context = torch.randn(1, 10, cfg.width), torch.randn(1, 10, 2 * cfg.width)
        out = synth(own, context, torch.zeros(1, 10, 3))
        # The sway: sigma = softplus(0) = log 2 head units per unit of z, added before the bound.
        synth.sway.weight.zero_()
        synth.sway.bias.zero_()
        z = torch.linspace(-2, 2, 30).reshape(1, 10, 3)
        swayed = synth(own, context, z)[0, :, cfg.num_weights:]
    head = out[0, :, cfg.num_weights:]
    bound = lambda units: cfg.max_head_angle * np.tanh(units * cfg.head_unit_rad / cfg.max_head_angle)
    assert torch.allclose(head, torch.full_like(head, bound(1.0)), atol=1e-6)
    assert torch.allclose(swayed, bound(1.0 + np.log(2.0) * z[0]).float(), atol=1e-6)


@pytest.mark.parametrize("version, says", [(None, "before format versions"), (4, "format 4"), (6, "format 6")])
def test_a_checkpoint_of_another_format_version_is_refused(random_model, tmp_path, version, says):
    """Its weights may have the same names and would load silently into a different network."""
    import torch

    from model_runtime.errors import NoModel
    from model_runtime.model_file import load_checkpoint

    ckpt = torch.load(random_model.with_suffix(".pt"), weights_only=False)
    load_checkpoint(random_model.with_suffix(".pt"))  # today's loads
    if version is None:
        del ckpt["format_version"]
    else:
        ckpt["format_version"] = version
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    with pytest.raises(NoModel, match=rf"old\.pt: a Duet model from {says}.*; this runtime runs format 5") as err:
        load_checkpoint(old)
    assert "\n" not in str(err.value)


def test_an_onnx_model_of_another_format_version_is_refused(random_model, tmp_path):
    import onnx

    from model_runtime.backends import OnnxBackend
    from model_runtime.errors import NoModel

    proto = onnx.load(str(random_model))
    for prop in proto.metadata_props:
        if prop.key == "duet_format_version":
            prop.value = "4"
    onnx.save(proto, str(tmp_path / "v4.onnx"))
    with pytest.raises(NoModel, match=r"v4\.onnx: a Duet model from format 4"):
        OnnxBackend(tmp_path / "v4.onnx", "cpu")


def test_added_audio_blocks_start_as_the_identity():
    """A network grown by residual audio blocks computes what the smaller one did until trained,
    so a fine-tune from smaller weights starts where that model was."""
    import torch

    from model_runtime.config import DualTalkConfig
    from model_runtime.net.audio_encoder import LogMelEncoder

    torch.manual_seed(0)
    small = LogMelEncoder(DualTalkConfig(audio_blocks=0)).eval()
    grown = LogMelEncoder(DualTalkConfig(audio_blocks=2)).eval()
    missing, unexpected = grown.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("blocks.") for k in missing)
    mel = torch.randn(2, 4 * 50, DualTalkConfig().n_mels)
    with torch.no_grad():
        assert torch.allclose(grown(mel), small(mel), atol=1e-6)
        grown.blocks[0].point.weight.normal_()  # trained, a block changes the features
        assert not torch.allclose(grown(mel), small(mel), atol=1e-3)


def test_a_config_saved_before_audio_blocks_means_none():
    """Models v6 and before saved no audio_blocks field: their networks had no blocks."""
    from model_runtime.config import DualTalkConfig

    saved = DualTalkConfig(audio_blocks=0).to_json().replace('"audio_blocks": 0, ', "")
    assert "audio_blocks" not in saved
    assert DualTalkConfig.from_json(saved).audio_blocks == 0
    assert DualTalkConfig.from_json(DualTalkConfig(audio_blocks=5).to_json()).audio_blocks == 5
