"""Inference backends: ONNX Runtime (GPU when a CUDA session really works, else CPU) and torch.

Both take the same numpy inputs and return (B, T, 55) float32, so the windowed runner and
the parity test treat them alike. Importing this module imports neither runtime.
"""

import importlib.util
import re
import sys

import numpy as np

from . import model_file
from .errors import NoModel, clip


class Backend:
    name = "?"

    def __init__(self, path, cfg, trained, info, device, provider, notes):
        self.path, self.cfg, self.trained, self.info = str(path), cfg, trained, info
        self.device, self.provider, self.notes = device, provider, notes

    def run(self, self_audio, partner_audio, partner_motion, motion_known, head_noise):
        raise NotImplementedError

    def describe(self):
        return {"backend": self.name, "device": self.device, "provider": self.provider,
                "model": self.path, "trained": self.trained, "gpu": gpu_name(self.device)}


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, path, device="auto"):
        import onnxruntime as ort

        path = model_file.resolve(path, ".onnx")
        self.session, provider, notes = _onnx_session(ort, str(path), device)
        meta = model_file.parse_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        super().__init__(path, meta["config"], meta["trained"], meta["info"],
                         "cuda" if provider.startswith("CUDA") else "cpu", provider, notes)

    def run(self, self_audio, partner_audio, partner_motion, motion_known, head_noise):
        feeds = dict(zip(model_file.INPUT_NAMES, (self_audio, partner_audio, partner_motion, motion_known,
                                                  head_noise)))
        return self.session.run(None, feeds)[0]


def _onnx_session(ort, path, device):
    """Try CUDA where asked or automatic; fall back to CPU with a note saying why."""
    notes = []
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if device in ("auto", "cuda", "gpu"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            # onnxruntime-gpu lists CUDA even on machines without a GPU: only a session that
            # really runs on it counts. Its own loud log of the failure is replaced by our note.
            ort.set_default_logger_severity(4)
            try:
                sess = ort.InferenceSession(path, opts, providers=["CUDAExecutionProvider",
                                                                   "CPUExecutionProvider"])
                if sess.get_providers()[0] == "CUDAExecutionProvider":
                    return sess, "CUDAExecutionProvider", notes
                notes.append(f"onnx: CUDA provider could not start ({_cuda_missing()}); running on CPU")
            except Exception as exc:  # CUDA libraries missing or mismatched
                notes.append(f"onnx: CUDA session failed ({str(exc).splitlines()[0][:120]}); running on CPU")
            finally:
                ort.set_default_logger_severity(2)
        else:
            notes.append("onnx: this onnxruntime has no CUDA provider; running on CPU")
    try:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # truncated, empty, or not ONNX at all
        raise NoModel(f"{clip(path)}: not a readable ONNX model ({_ort_reason(exc)})") from None
    return sess, "CPUExecutionProvider", notes


def _ort_reason(exc):
    """ONNX Runtime's message without its code prefix and the path it repeats."""
    text = model_file.first_line(exc, limit=10_000)
    text = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*", "", text)
    text = re.sub(r"^Load model from .* failed:\s*", "", text, flags=re.S)
    return text[:157] + "..." if len(text) > 160 else text


def _cuda_missing():
    """Why CUDA is not usable, in words an artist can act on."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA GPU driver on this machine"
    return "CUDA 13 / cuDNN 9 libraries that onnxruntime-gpu needs were not found"


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, path, device="auto"):
        import torch

        path = model_file.resolve(path, ".pt")
        notes = []
        want_cuda = device in ("auto", "cuda", "gpu")
        if want_cuda and not torch.cuda.is_available():
            notes.append("torch: no CUDA device available; running on CPU")
            want_cuda = False
        dev = "cuda" if want_cuda else "cpu"
        self.model, meta = model_file.load_checkpoint(path)
        self.model.to(dev)
        self.torch = torch
        super().__init__(path, meta["config"], meta["trained"], meta["info"], dev,
                         "torch-" + dev, notes)

    def run(self, self_audio, partner_audio, partner_motion, motion_known, head_noise):
        torch = self.torch
        dev = self.device
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(a)).to(dev)
                    for a in (self_audio, partner_audio, partner_motion, motion_known, head_noise)]
            return self.model(*args).float().cpu().numpy()


BACKENDS = {"onnx": OnnxBackend, "torch": TorchBackend}


def available_backends():
    return [name for name, mod in (("onnx", "onnxruntime"), ("torch", "torch"))
            if importlib.util.find_spec(mod) is not None]


def load_backend(model=None, backend="auto", device="auto"):
    """The backend for a model path (None: the shipped model). auto prefers ONNX."""
    if backend == "auto":
        path, installed = model_file.model_path(model), available_backends()
        onnx_ok = "onnx" in installed and model_file.sibling(path, ".onnx").exists()
        # Without torch, the ONNX backend is the one to say what is wrong with the model path.
        backend = "onnx" if onnx_ok or "torch" not in installed else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (onnx or torch)")
    if backend not in available_backends():
        raise NoModel(f"backend: {backend} is not installed in this Python ({sys.executable})")
    return BACKENDS[backend](model, device)


def gpu_name(device):
    if device != "cuda":
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None
