"""Model files: a torch checkpoint (.pt) and its ONNX export (.onnx) side by side.

Both carry the config and a `trained` flag, so a randomly initialised network is never
mistaken for the shipped model. The torch backend reads the .pt, the ONNX backend the .onnx;
either path may be given, the sibling is found by its extension (only from a .pt or .onnx name).
"""

import json
import os
import re
import warnings
from pathlib import Path

from .channels import CHANNELS
from .config import DualTalkConfig
from .errors import NoModel, clip
from .paths import ASSETS

FORMAT = "duet-dualtalk"
# The ONNX graph's inputs, in the network's argument order, and its output: export names them,
# the ONNX backend feeds them (here, because neither may import the other's runtime).
INPUT_NAMES = ("self_mel", "partner_mel", "partner_motion", "motion_known", "head_noise")
# Bumped whenever the network's inputs, outputs or meaning change; a file of another version is
# refused in one line rather than run wrongly. 5: model v5 (seeded head-sway input, head_noise).
FORMAT_VERSION = 5
OUTPUT_NAMES = ("channels",)
SHIPPED_MODEL = ASSETS / "duet_dualtalk.onnx"
MODEL_SUFFIXES = (".onnx", ".pt")


def default_model_path():
    """The shipped model; NoModel (with what to do) when none is shipped yet."""
    if SHIPPED_MODEL.exists() or SHIPPED_MODEL.with_suffix(".pt").exists():
        return SHIPPED_MODEL
    raise NoModel(
        f"no trained model is shipped in {ASSETS} yet (expected {SHIPPED_MODEL.name}); "
        "pass --model PATH to a model you trained or exported")


def model_path(path):
    """The model path a caller named (None: the shipped model), as a Path; NoModel unless it names a
    .onnx or .pt file. Only those have a sibling of the other kind: `random.bin` must never quietly
    load a `random.onnx` that happens to lie beside it."""
    if path is None:
        return default_model_path()
    text = os.fspath(path)
    if not text.strip():
        raise NoModel("model: an empty path names no model file (leave --model out for the shipped model)")
    path = Path(text)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise NoModel(f"{clip(text)}: not a model file name (a Duet model is a .onnx or .pt file)")
    return path


def sibling(path, suffix):
    """The file of kind `suffix` for a model path: itself when it is that kind (any letter case)."""
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_suffix(suffix)


def _readable(path):
    if path.is_dir():
        raise NoModel(f"{clip(path)}: is a folder, not a model file")
    if path.stat().st_size == 0:
        raise NoModel(f"{clip(path)}: model file is empty (0 bytes)")
    return path


def resolve(path, suffix):
    """The file of the given kind (.pt or .onnx) for a model path; NoModel if absent."""
    path = model_path(path)
    candidate = sibling(path, suffix)
    if candidate.exists():
        return _readable(candidate)
    if not path.exists():
        raise NoModel(f"{clip(path)}: model file not found")
    if suffix == ".pt":
        # The extension zip ships the ONNX file only; the checkpoint is in a checkout's assets/.
        raise NoModel(f"the PyTorch backend needs a .pt checkpoint and there is none at {clip(candidate)}: "
                      "set the model path (Duet's preferences, or --model) to a .pt file, "
                      "or use the ONNX backend")
    raise NoModel(f"{clip(path)}: no {suffix} file beside it ({clip(candidate.name)}) for this backend")


def first_line(exc, limit=160):
    """An exception's message as one short line: libraries' messages run to many lines."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    if text.endswith(":") and len(lines) > 1:  # "Error(s) in loading state_dict for DualTalk:" says nothing yet
        text = f"{text} {lines[1]}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def save_checkpoint(path, model, trained, info=None):
    import torch

    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.loads(model.cfg.to_json()),
                "trained": bool(trained), "channels": list(CHANNELS), "info": info or {},
                "state_dict": model.state_dict()},
               os.fspath(path))


def load_checkpoint(path):
    """-> (DualTalk in eval mode, metadata dict); NoModel (one line) for anything else."""
    import torch

    from .net import DualTalk

    try:
        # weights_only: a checkpoint holds tensors and plain values, so a foreign pickle in a .pt
        # file is refused instead of run. Its unpickler warns about odd files on stderr: the
        # refusal below says it in one line instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise NoModel(f"{clip(path)}: not a readable PyTorch checkpoint ({_torch_reason(exc)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NoModel(f"{clip(path)}: not a Duet model checkpoint")
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise NoModel(f"{clip(path)}: a damaged Duet checkpoint (no config or weights)")
    _check_version(ckpt.get("format_version"), path)
    try:
        cfg = DualTalkConfig.from_dict(ckpt["config"])
        model = DualTalk(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise NoModel(f"{clip(path)}: a damaged Duet checkpoint ({first_line(exc)})") from None
    model.eval()
    return model, {"trained": ckpt.get("trained") is True, "info": ckpt.get("info", {}), "config": cfg}


def _torch_reason(exc):
    """torch.load's refusal in a few words: its own message is a page of advice."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = re.split(r"(?<=\.)\s", text.strip(), maxsplit=1)[0]
        return first_line(text)
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__


def _check_version(version, path):
    """Same weights' names can mean a different network: refuse, never guess."""
    if version != FORMAT_VERSION:
        was = "before format versions (Duet model v4 or older)" if version is None else f"format {version}"
        raise NoModel(f"{clip(path)}: a Duet model from {was}; this runtime runs format {FORMAT_VERSION} "
                      "(model v5): retrain with `make train` or use a matching Duet release")


def onnx_metadata(cfg, trained, info):
    return {"duet_format": FORMAT, "duet_format_version": str(FORMAT_VERSION), "duet_config": cfg.to_json(),
            "duet_trained": json.dumps(bool(trained)), "duet_channels": json.dumps(list(CHANNELS)),
            "duet_info": json.dumps(info or {})}


def parse_onnx_metadata(props, path):
    if props.get("duet_format") != FORMAT:
        raise NoModel(f"{clip(path)}: not a Duet ONNX model (no duet metadata)")
    version = props.get("duet_format_version")
    _check_version(int(version) if version and version.isdigit() else version, path)
    try:
        return {"config": DualTalkConfig.from_json(props["duet_config"]),
                "trained": json.loads(props.get("duet_trained", "false")) is True,
                "info": json.loads(props.get("duet_info", "{}"))}
    except Exception as exc:
        raise NoModel(f"{clip(path)}: a damaged Duet ONNX model (metadata: {first_line(exc)})") from None
