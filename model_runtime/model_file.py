"""Model files: a torch checkpoint (.pt) and its ONNX export (.onnx) side by side.

Both carry the config and a `trained` flag, so a randomly initialised network is never
mistaken for the shipped model. The torch backend reads the .pt, the ONNX backend the .onnx;
either path may be given, the sibling is found by its extension.
"""

import json
import os
from pathlib import Path

from .channels import CHANNELS
from .config import DualTalkConfig
from .errors import NoModel
from .paths import ASSETS

FORMAT = "duet-dualtalk"
# The ONNX graph's inputs, in the network's argument order, and its output: export names them,
# the ONNX backend feeds them (here, because neither may import the other's runtime).
INPUT_NAMES = ("self_mel", "partner_mel", "partner_motion", "motion_known")
OUTPUT_NAMES = ("channels",)
SHIPPED_MODEL = ASSETS / "duet_dualtalk.onnx"


def default_model_path():
    """The shipped model; NoModel (with what to do) when none is shipped yet."""
    if SHIPPED_MODEL.exists() or SHIPPED_MODEL.with_suffix(".pt").exists():
        return SHIPPED_MODEL
    raise NoModel(
        f"no trained model is shipped in {ASSETS} yet (expected {SHIPPED_MODEL.name}); "
        "pass --model PATH to a model you trained or exported")


def resolve(path, suffix):
    """The file of the given kind (.pt or .onnx) for a model path; NoModel if absent."""
    path = Path(path if path is not None else default_model_path())
    candidate = path.with_suffix(suffix)
    if candidate.exists():
        return candidate
    if not path.exists():
        raise NoModel(f"{path}: model file not found")
    if suffix == ".pt":
        # The extension zip ships the ONNX file only; the checkpoint is in a checkout's assets/.
        raise NoModel(f"the PyTorch backend needs a .pt checkpoint and there is none at {candidate}: "
                      "set the model path (Duet's preferences, or --model) to a .pt file, "
                      "or use the ONNX backend")
    raise NoModel(f"{path}: no {suffix} file beside it ({candidate.name}) for this backend")


def save_checkpoint(path, model, trained, info=None):
    import torch

    torch.save({"format": FORMAT, "config": json.loads(model.cfg.to_json()), "trained": bool(trained),
                "channels": list(CHANNELS), "info": info or {}, "state_dict": model.state_dict()},
               os.fspath(path))


def load_checkpoint(path):
    """-> (DualTalk in eval mode, metadata dict)."""
    import torch

    from .net import DualTalk

    ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NoModel(f"{path}: not a Duet model checkpoint")
    if "time_slopes" not in ckpt["config"]:  # same weights' names, different network: refuse, not guess
        raise NoModel(f"{path}: a checkpoint from before time-aware attention (Duet model v3 or older) "
                      "does not run in this network; use its .onnx export, or retrain with `make train`")
    cfg = DualTalkConfig.from_dict(ckpt["config"])
    model = DualTalk(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, {"trained": ckpt["trained"], "info": ckpt.get("info", {}), "config": cfg}


def onnx_metadata(cfg, trained, info):
    return {"duet_format": FORMAT, "duet_config": cfg.to_json(), "duet_trained": json.dumps(bool(trained)),
            "duet_channels": json.dumps(list(CHANNELS)), "duet_info": json.dumps(info or {})}


def parse_onnx_metadata(props, path):
    if props.get("duet_format") != FORMAT:
        raise NoModel(f"{path}: not a Duet ONNX model (no duet metadata)")
    return {"config": DualTalkConfig.from_json(props["duet_config"]),
            "trained": json.loads(props.get("duet_trained", "false")),
            "info": json.loads(props.get("duet_info", "{}"))}
