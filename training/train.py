"""`make train`: synthetic conversations -> a trained DualTalk -> assets/ (ONNX + .pt + model card).

    python -m training.train [--minutes 100] [--out assets]

Reproducible from nothing: conversations are generated deterministically (seeded, cached),
training is seeded, and the run ends at a fixed step count or the time budget, whichever comes
first (the card records which). Uses a CUDA GPU when one is present.
"""

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from model_runtime.channels import CHANNELS, NUM_ARKIT, index_of
from model_runtime.config import DualTalkConfig
from model_runtime.model_file import SHIPPED_MODEL, load_checkpoint, save_checkpoint
from model_runtime.net import DualTalk
from model_runtime.net.audio_encoder import ResidualConv
from model_runtime.paths import ROOT

from .conversation import SHORT_TTS, ConversationConfig
from .dataset import IGNORE, ConversationWindows, FacegoodWindows, WindowConfig
from .metrics import BILABIALS, CLOSURE, GROUPS
from .voices import ARPABET

CLOSURE_IDX = list(index_of(CLOSURE))
MOUTH_IDX, HEAD_IDX = GROUPS["mouth_jaw"], GROUPS["head"]


def bilabial_frames(phones):
    """(B, T) float: 1 at frames whose phone is P, B or M, and one frame either side."""
    hit = torch.zeros_like(phones, dtype=torch.float32)
    for p in BILABIALS:
        hit = torch.maximum(hit, (phones == ARPABET.index(p)).float())
    return torch.nn.functional.max_pool1d(hit[:, None], 3, stride=1, padding=1)[:, 0]


@dataclass
class TrainConfig:
    seed: int = 0
    train_conversations: int = 400  # = TRAIN_CONVS of `make train-data`
    test_conversations: int = 40  # = TEST_CONVS
    # Held-out real conversations (both sides LibriSpeech speakers never trained on) for the card's
    # real-speech fidelity report (training/fidelity.py); 0 skips it.
    fidelity_conversations: int = 12
    windows_per_conversation: int = 8  # random 8 s windows drawn per conversation per epoch
    batch_size: int = 16
    max_steps: int = 4500  # ~0.8 s a step on 2 CPU cores: about an hour
    max_minutes: float = 100.0  # wall-clock budget: converges on a 2-core CPU within two hours
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    final_lr_fraction: float = 0.05  # cosine decay down to this share of lr
    grad_clip: float = 1.0
    # DualTalk: regression per channel group + velocity. Head angles are radians (~0.1), so the
    # head group is measured in units of head_scale_rad to weigh like the 0..1 blendshapes.
    group_weights: dict = field(default_factory=lambda: {"mouth_jaw": 1.0, "eyes_brows": 1.0, "head": 1.0})
    head_scale_rad: float = 0.15
    # Listening frames of the expression groups weigh this much more: they are small, rare
    # movements next to speech, and plain MSE lets the model settle for a static listening face.
    listen_weight: float = 3.0
    velocity_weight: float = 1.0
    # Lip shapes (press, roll, funnel, pucker) move a few tenths where the jaw moves a whole unit, so
    # squared error lets the network settle for muted lips. channel_boost > 1: each weight channel's
    # error is scaled by jaw std / its own std (measured on training windows), at most this much.
    # v4 (1.0) gave closure channels a fifth of the animator's spread on real speech; 4 brings rounding
    # up (measured in a fine-tune: funnel spread 0.34 -> 0.57).
    channel_boost: float = 4.0
    # Phone classification from the own audio features (cross-entropy against the alignments'
    # phones, a training-only linear probe): makes the audio pathway phonetic, so P/B/M can close the
    # lips. 0 = off.
    phone_weight: float = 0.5
    # A lip closure lasts 2-3 frames of a conversation's thousands: squared error shaves it off. On
    # frames whose phone is P, B or M (and one frame either side) the closure channels' error weighs
    # this much more. 1 = off. In 150-step probes from v5 on held-out real speech (with spread_weight
    # 8; scripts/probe_finetune.py, docs/experiments.md): closure rate 0.80 at 8, 0.88 at 16 (the
    # animator 1.00). v5 trained with 4, v6-v8 with 16 (v8's closure rate 0.81). From v8, once the
    # false closures on N were fewer, 32 against a 16 control: closure rate 0.85 -> 0.90, closure r,
    # lip sync and leakage unchanged.
    bilabial_weight: float = 32.0
    # Squared error pays for a muted mouth only by its mean error, so where the audio leaves a lip
    # shape uncertain the network answers with the average: the spread of each mouth channel over a
    # window shrinks (v5: lip shapes 0.45-0.72 of the animator's on real speech). This term is the
    # squared difference between prediction and target std per window and mouth channel (in the
    # channel_scale units), so a muted mouth costs as much as a wrong one. 0 = off. In the same
    # probes, mean mouth-channel spread (x the animator's): 0.49 without it, 0.63 at 2, 0.71 at 8,
    # correlations within 0.01. From v9, 16 against an 8 control: lower-lip roll 0.70 -> 0.73,
    # upper-lip shrug 0.62 -> 0.67, mean mouth spread 0.82 -> 0.85, the rest unchanged. From scratch
    # (with vtlp, 3472 steps: fewer than v9's, less annealed) 9 of 15 lip spreads in band against v9's
    # 13 and leakage 0.106 against 0.082, so the default stays v9's 8 (make train rebuilds v9).
    spread_weight: float = 8.0
    # The same for the head, its std per window taken over the speaking frames and over the
    # listening frames apart (a window with fewer than head_spread_frames of either skips that
    # half). v6 without it: listening head 0.75x the animator's on real speech (v5 0.98x). In 150-step
    # probes from v6: listening head 0.67x without, 0.86x at 8 (charged on the head layers alone,
    # head_alone; through the shared trunk it opened the listener's jaw). v8 at 8: 0.92x, its
    # listener's jaw 8 % above the animator's (v6 13 % below). 0 = off.
    head_spread_weight: float = 8.0
    head_spread_frames: int = 25
    gain_db: tuple = (-40.0, 0.0)  # with level_norm: each track recorded this much quieter (dataset)
    room_prob: float = 0.3  # with level_norm: a window's track through a random room (recording.degrade)
    mains_prob: float = 0.2  # ... with mains hum and a DC offset
    band_prob: float = 0.2  # ... through a random narrow band (phone line, codec, small microphone)
    # ... each track's formants moved by a random factor (dataset.warp_mel, vocal-tract-length
    # perturbation). Why: v9 on real speech of its training speakers closes the lips with the
    # animator at r 0.60-0.70, on held-out speakers at 0.34-0.47 (jaw r 0.81 and 0.79): the closures
    # are learnt per voice. Measured, it does not help: fine-tunes of v9 with and without it gave the
    # same held-out closure r (0.38 at 150 steps, 0.42 at 500), and a run from scratch with (0.9, 1.1)
    # and spread_weight 16 0.42 against v9's 0.40, seen voices 0.62 both (docs/experiments.md,
    # v10 candidate). (1, 1) = off.
    vtlp: tuple = (1.0, 1.0)
    # Real mouths: this share of each epoch's windows are FACEGOOD takes (real speech with its real,
    # artist-solved mouth; the held-out takes never), supervising only the mouth channels that rig
    # drives (facegood.load_take's per-take mask). 0 = off, or when the data is absent.
    facegood_fraction: float = 0.1
    facegood_check: bool = True  # the card's held-out FACEGOOD check (facegood.HELD_OUT)
    # Start from these weights (experiments); empty: from scratch. Residual audio blocks the
    # checkpoint lacks start as the identity (audio_encoder.ResidualConv); any other mismatch is refused.
    init_checkpoint: str = ""
    loader_workers: int = 1
    log_every: int = 50
    # How the training and test conversations are made (voices, lengths, microphones).
    conversation: ConversationConfig = field(default_factory=ConversationConfig)


def tiny_preset():
    """A few steps of a small network on two short TTS-only conversations: the whole pipeline
    (data, training, ONNX export, evaluation, card) end to end in about a minute, for tests."""
    conv = ConversationConfig(**SHORT_TTS)
    tcfg = TrainConfig(train_conversations=2, test_conversations=2, fidelity_conversations=0,
                       windows_per_conversation=2, batch_size=2,
                       max_steps=3, warmup_steps=1, loader_workers=0, log_every=1, conversation=conv,
                       facegood_fraction=0.0, facegood_check=False)
    mcfg = DualTalkConfig(width=32, interaction_layers=1, lstm_layers=1)
    return tcfg, mcfg, ROOT / "out" / "train-tiny"  # a check never replaces the shipped model


# name -> (TrainConfig, DualTalkConfig, default output folder)
PRESETS = {"shipped": lambda: (TrainConfig(), DualTalkConfig(), SHIPPED_MODEL.parent), "tiny": tiny_preset}


def channel_scale(data, tcfg, n_windows=160):
    """(55,) error scale: 1 for the head (scaled by head_scale_rad elsewhere) and, with channel_boost,
    jaw std / channel std for the weights, clipped to [1, channel_boost]."""
    scale = torch.ones(len(CHANNELS))
    if tcfg.channel_boost <= 1:
        return scale
    rng = np.random.default_rng(tcfg.seed)
    idx = rng.choice(len(data), size=min(n_windows, len(data)), replace=False)
    rows = [data[int(k)] for k in idx]
    t = torch.cat([r["target"][r["valid"] > 0] for r in rows])
    std = t.std(0).clamp_min(1e-4)
    jaw = std[index_of(("jawOpen",))[0]]
    scale[:NUM_ARKIT] = (jaw / std[:NUM_ARKIT]).clamp(1.0, tcfg.channel_boost)
    return scale


def spread_error(p, t, mask, idx, channels=None, min_frames=2):
    """Mean over windows and channels idx of (std of p - std of t)^2, each std over the window's
    frames in mask. p/t (B, T, 55), mask (B, T), channels (B, 55) or None: which channels count.
    A window with fewer than min_frames frames in mask does not count (too few for a spread)."""
    p, t, m = p[..., idx], t[..., idx], mask[..., None]
    n = m.sum(1)  # (B, 1)
    enough = (n >= min_frames).to(p.dtype)
    n = n.clamp_min(2.0)

    def std(x):
        mean = (x * m).sum(1) / n
        return (((x - mean[:, None]) ** 2 * m).sum(1) / (n - 1)).clamp_min(1e-8).sqrt()  # (B, C)

    w = enough.expand(-1, len(idx)) if channels is None else channels[:, idx] * enough
    return ((std(p) - std(t)) ** 2 * w).sum() / w.sum().clamp_min(1.0)


def loss_fn(pred, target, valid, tcfg, scale, speaking=None, channels=None, bilabial=None, head=None):
    """Per-group masked MSE + velocity MSE. pred/target (B, T, 55), valid and speaking (B, T);
    the expression groups' listening frames (speaking == 0) weigh tcfg.listen_weight. channels
    (B, 55): which channels each window supervises (None: all). bilabial (B, T): frames at P/B/M,
    where the closure channels weigh tcfg.bilabial_weight. head (B, T, 3): the head angles the head
    spread term charges (None: pred's)."""
    p = scaled_p = pred * scale
    t = scaled_t = target * scale
    if channels is not None or bilabial is not None:
        w = torch.ones_like(p)
        if bilabial is not None and tcfg.bilabial_weight != 1:
            w[..., CLOSURE_IDX] = 1 + (tcfg.bilabial_weight - 1) * bilabial[..., None]
        if channels is not None:
            w = w * channels[:, None, :]
        root = w.sqrt()  # the squared errors below then carry w
        p, t = p * root, t * root
    m = valid[..., None]
    denom = m.sum().clamp_min(1.0)
    listen_m = m if speaking is None else m * (1 + (tcfg.listen_weight - 1) * (1 - speaking[..., None]))
    parts = {}
    for g, idx in GROUPS.items():
        w = m if g == "head" else listen_m
        parts[g] = ((p[..., idx] - t[..., idx]) ** 2 * w).sum() / (denom * len(idx))
    vm = (valid[:, 1:] * valid[:, :-1])[..., None]
    dv = (p[:, 1:] - p[:, :-1]) - (t[:, 1:] - t[:, :-1])
    parts["velocity"] = (dv ** 2 * vm).sum() / (vm.sum().clamp_min(1.0) * p.shape[-1])
    total = sum(tcfg.group_weights[g] * parts[g] for g in GROUPS) + tcfg.velocity_weight * parts["velocity"]
    if tcfg.spread_weight > 0:
        parts["spread"] = spread_error(scaled_p, scaled_t, valid, MOUTH_IDX, channels)  # before the error weights
        total = total + tcfg.spread_weight * parts["spread"]
    if tcfg.head_spread_weight > 0 and speaking is not None:
        # Speaking and listening apart: a listener's head moves about half as much, and one std
        # over the whole window would let a lively speaking half pay for a still listening half.
        states = (valid * speaking, valid * (1 - speaking))
        hp = scaled_p if head is None else torch.cat([scaled_p[..., :HEAD_IDX[0]], head * scale[HEAD_IDX]], -1)
        parts["head_spread"] = sum(spread_error(hp, scaled_t, s, HEAD_IDX, channels, tcfg.head_spread_frames)
                                   for s in states) / 2
        total = total + tcfg.head_spread_weight * parts["head_spread"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def facegood_windows(tcfg, win_cfg, n_conversation_windows, log=print):
    """FACEGOOD's training takes as windows, tcfg.facegood_fraction of an epoch; None when off or absent."""
    from . import facegood

    if tcfg.facegood_fraction <= 0:
        return None
    if not facegood.available():
        log(f"FACEGOOD data not found at {facegood.DATA}: training without real mouths")
        return None
    names = [t for t in facegood.takes() if t not in facegood.HELD_OUT]
    count = max(1, round(n_conversation_windows * tcfg.facegood_fraction / (1 - tcfg.facegood_fraction)))
    return FacegoodWindows(names, count, tcfg.seed, win_cfg)


def head_alone(model, synth_in, noise):
    """The head angles again from the decoder features held fixed (None when they were not kept):
    the head spread term then reaches only the head's own output layers. Through the shared trunk it
    also moved the mouth: in a 150-step probe the listener's jaw rose (leakage 0.064 -> 0.089)."""
    x = synth_in.pop("x", None)
    if x is None:
        return None
    syn, x, rows = model.synthesis, x.detach(), slice(model.synthesis.num_weights, None)
    mu = torch.nn.functional.linear(x, syn.head.weight[rows], syn.head.bias[rows])  # the 3 head rows only
    return syn.head_angles(x, mu, noise)


def load_initial_weights(model, path):
    """Load a checkpoint's weights into model; residual audio blocks it lacks stay as built (the
    identity), anything else that does not fit is a one-line ValueError naming the file."""
    try:
        missing, unexpected = model.load_state_dict(load_checkpoint(path)[0].state_dict(), strict=False)
    except RuntimeError as exc:  # shapes that differ: torch lists every tensor, one line is enough
        raise ValueError(f"{path}: weights do not fit this network ({str(exc).splitlines()[1].strip()})") from None
    # Named from the model's own modules: ".blocks." alone would also pass missing transformer blocks.
    grown = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, ResidualConv))
    if unexpected or any(not k.startswith(grown) for k in missing):
        raise ValueError(f"{path}: weights do not fit this network "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def lr_at(step, tcfg, total_steps):
    if step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    x = min(1.0, (step - tcfg.warmup_steps) / max(1, total_steps - tcfg.warmup_steps))
    f = tcfg.final_lr_fraction
    return tcfg.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * x)))


def train(tcfg: TrainConfig, mcfg: DualTalkConfig, out_pt, log=print):
    torch.manual_seed(tcfg.seed)
    np.random.seed(tcfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(os.cpu_count() or 2)  # the loader worker is light (FFTs of one batch)
    augment = mcfg.level_norm  # level, room and mains augmentation only where the features normalise level
    win_cfg = WindowConfig(frames=mcfg.window_frames, level_norm=mcfg.level_norm,
                           gain_db=tcfg.gain_db if augment else (0.0, 0.0),
                           room_prob=tcfg.room_prob if augment else 0.0, mains_prob=tcfg.mains_prob if augment else 0.0,
                           band_prob=tcfg.band_prob if augment else 0.0,
                           warp=tuple(tcfg.vtlp) if augment else (1.0, 1.0))
    windows = ConversationWindows("train", tcfg.train_conversations, tcfg.seed, conv_cfg=tcfg.conversation,
                                  win_cfg=win_cfg, train=True,
                                  windows_per_conversation=tcfg.windows_per_conversation)
    real_mouths = facegood_windows(tcfg, win_cfg, len(windows), log)
    data = windows if real_mouths is None else torch.utils.data.ConcatDataset([windows, real_mouths])
    model = DualTalk(mcfg)
    if tcfg.init_checkpoint:
        load_initial_weights(model, tcfg.init_checkpoint)
    model = model.to(device).train()
    params = list(model.parameters())
    own_audio = {}
    phone_head = None
    if tcfg.phone_weight > 0:
        phone_head = torch.nn.Linear(mcfg.width, len(ARPABET)).to(device)
        params += list(phone_head.parameters())
        model.joint_encoder.self_audio.register_forward_hook(lambda m, i, o: own_audio.__setitem__("x", o))
    synth_in = {}
    if tcfg.head_spread_weight > 0:
        model.synthesis.head.register_forward_hook(lambda m, i, o: synth_in.__setitem__("x", i[0]))
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    scale = channel_scale(windows, tcfg).to(device)
    scale[HEAD_IDX] = 1.0 / tcfg.head_scale_rad
    t0, step, epoch, stop_reason = time.time(), 0, 0, "max_steps"
    history = []
    while step < tcfg.max_steps:
        windows.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(data, batch_size=tcfg.batch_size, shuffle=True, drop_last=True,
                                             num_workers=tcfg.loader_workers,
                                             generator=torch.Generator().manual_seed(tcfg.seed + epoch))
        if real_mouths is not None:
            real_mouths.set_epoch(epoch)
        for batch in loader:
            b = {k: v.to(device) for k, v in batch.items()}
            for group in opt.param_groups:
                group["lr"] = lr_at(step, tcfg, tcfg.max_steps)
            pred = model(b["self_mel"], b["partner_mel"], b["partner_motion"], b["motion_known"], b["sway"])
            loss, parts = loss_fn(pred, b["target"], b["valid"], tcfg, scale, b["speaking"], b["channels"],
                                  bilabial_frames(b["phones"]), head_alone(model, synth_in, b["sway"]))
            if phone_head is not None:
                logits = phone_head(own_audio.pop("x"))  # (B, T, phones)
                ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["phones"].flatten(),
                                                       ignore_index=IGNORE)
                loss = loss + tcfg.phone_weight * ce
                parts["phones"] = float(ce.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
            opt.step()
            step += 1
            if step % tcfg.log_every == 0 or step == 1:
                minutes = (time.time() - t0) / 60
                history.append({"step": step, "minutes": round(minutes, 2), "loss": loss.item(), **parts})
                log(f"step {step:5d}  {minutes:6.1f} min  loss {loss.item():.4f}  "
                    + "  ".join(f"{k} {v:.4f}" for k, v in parts.items()))
            if (time.time() - t0) / 60 >= tcfg.max_minutes:
                stop_reason = "time budget"
                break
            if step >= tcfg.max_steps:
                break
        else:
            epoch += 1
            continue
        break
    minutes = (time.time() - t0) / 60
    info = {"steps": step, "epochs": epoch, "minutes": round(minutes, 1), "stop": stop_reason,
            "device": device, "train": asdict(tcfg), "history": history[-20:]}
    save_checkpoint(out_pt, model.cpu().eval(), trained=True, info=info)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for the model files and card (default: assets/ for "
                    "the shipped preset, out/train-PRESET for the others, so a check never replaces the shipped model)")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default: TrainConfig)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--train-conversations", type=int, default=None)
    ap.add_argument("--test-conversations", type=int, default=None)
    ap.add_argument("--skip-train", action="store_true", help="evaluate and card an existing checkpoint")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="shipped",
                    help="shipped: the model in assets/; tiny: a one-minute end-to-end check")
    ap.add_argument("--fields", default="{}", help="TrainConfig fields to change, as JSON (a candidate recipe "
                    "trained from scratch beside the shipped one), e.g. '{\"spread_weight\": 16}'")
    args = ap.parse_args(argv)
    tcfg, mcfg, default_out = PRESETS[args.preset]()
    fields = json.loads(args.fields)
    for name, value in fields.items():
        if not hasattr(tcfg, name):
            ap.error(f"--fields: TrainConfig has no field {name!r}")
        setattr(tcfg, name, tuple(value) if isinstance(value, list) else value)
    for name in ("minutes", "steps", "train_conversations", "test_conversations"):
        value = getattr(args, name)
        if value is not None:
            setattr(tcfg, {"minutes": "max_minutes", "steps": "max_steps"}.get(name, name), value)
    if fields and not args.out:  # a candidate never replaces the shipped model
        default_out = ROOT / "out" / "train-candidate"
    out = Path(args.out or default_out)
    out.mkdir(parents=True, exist_ok=True)
    pt = out / SHIPPED_MODEL.with_suffix(".pt").name
    t0 = time.time()
    if not args.skip_train:
        info = train(tcfg, mcfg, pt)
        print(json.dumps({k: v for k, v in info.items() if k != "history"}))
    from model_runtime.export import export_onnx

    from .report import evaluate_and_write_card

    onnx = export_onnx(pt, pt.with_suffix(".onnx"))
    evaluate_and_write_card(onnx, tcfg, out / "MODEL_CARD.md")
    print(f"make train: done in {(time.time() - t0) / 60:.1f} min -> {onnx}")


if __name__ == "__main__":
    main()
