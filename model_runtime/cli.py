"""Command line (design.md, exactly): predict / serve / info, plus init and export for models.

Exit codes of predict: 0 done; 2 bad input (one line on stderr naming the file and the
problem, no traceback); 1 internal error.
"""

import argparse
import json
import os
import sys
import time
import traceback

from . import __version__
from .errors import BadInput, Cancelled, NoModel

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
OUT_SUFFIXES = (".npz", ".csv")


def _add_model_args(p):
    p.add_argument("--model", default=None, help="model file (.onnx or .pt); default: the shipped model")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "gpu"])


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m model_runtime", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="two voice tracks -> 55 ARKit + head curves (.npz or LLF .csv)")
    p.add_argument("--self", dest="self_audio", required=True, help="the character's own voice")
    p.add_argument("--partner", default=None, help="the partner's voice (omit: silent partner)")
    p.add_argument("--partner-motion", default=None,
                   help="the partner's face: Live Link Face .csv or Duet .npz (omit: unknown)")
    p.add_argument("--fps", type=float, default=30.0, help="output frame rate, e.g. 24, 29.97, 60")
    p.add_argument("--out", required=True, help="result file: .npz or .csv (Live Link Face)")
    p.add_argument("--liveliness", default="on", choices=["on", "off"],
                   help="add seeded blinks, gaze shifts and idle head sway (default on)")
    p.add_argument("--seed", type=int, default=0, help="seed of the liveliness layer (same seed, same result)")
    _add_model_args(p)
    s = sub.add_parser("serve", help="JSONL server on stdin/stdout (the Blender add-on's channel)")
    _add_model_args(s)
    i = sub.add_parser("info", help="JSON: version, model, backends, providers, device")
    _add_model_args(i)
    n = sub.add_parser("init", help="write a randomly initialised (untrained) checkpoint, for tests")
    n.add_argument("--out", required=True)
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--config", default=None, help="JSON overrides of DualTalkConfig fields")
    e = sub.add_parser("export", help="checkpoint (.pt) -> ONNX with a dynamic time axis")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NoModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return EXIT_INTERNAL


def run_job(predictor, self_path, partner_path, motion_path, fps, out, progress=None, cancel=None,
            liveliness=True, seed=0):
    """One prediction, shared by `predict` and `serve`. Validates all inputs before any work and
    writes the result atomically (a temp file renamed), so a failed job leaves nothing behind."""
    from .audio import load_audio
    from .motion_io import read_motion, write_motion

    if not str(out).lower().endswith(OUT_SUFFIXES):
        raise BadInput(out, "output must end in .npz or .csv", code="bad_request")
    if not (fps and 1.0 <= fps <= 1000.0):
        raise BadInput(None, f"fps must be between 1 and 1000, got {fps}", code="bad_request")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise BadInput(out, "output folder does not exist", code="bad_request")
    t0 = time.perf_counter()
    if progress:
        progress("audio", 0.0)
    self_track = load_audio(self_path)
    partner_track = load_audio(partner_path) if partner_path else None
    motion = read_motion(motion_path) if motion_path else None
    result = predictor.predict(self_track, partner_track, motion, fps, progress, cancel, liveliness, seed)
    del self_track, partner_track
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    tmp = f"{out}.part{os.path.splitext(out)[1]}"
    try:
        write_motion(tmp, result.weights, result.fps)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"out": os.fspath(out), "frames": int(len(result.weights)), "fps": result.fps,
            "duration": result.duration, "seconds": round(time.perf_counter() - t0, 4),
            "notes": result.notes}


def load_predictor(args):
    from .backends import load_backend
    from .inference import Predictor

    backend = load_backend(args.model, args.backend, args.device)
    for note in backend.notes:
        print(f"note: {note}", file=sys.stderr)
    if not backend.trained:
        print(f"warning: {backend.path} is a randomly initialised, untrained network: its output is "
              "not animation", file=sys.stderr)
    return Predictor(backend)


def cmd_predict(args):
    predictor = load_predictor(args)
    done = run_job(predictor, args.self_audio, args.partner, args.partner_motion, args.fps, args.out,
                   liveliness=args.liveliness == "on", seed=args.seed)
    for note in done["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {done['out']}: {done['frames']} frames at {done['fps']:g} fps "
          f"({done['duration']:.2f} s of audio) in {done['seconds']:.2f} s", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args):
    from .server import serve

    return serve(args)


def cmd_info(args):
    from .backends import available_backends, load_backend

    info = {"version": __version__, "backends": available_backends(), "python": sys.executable}
    try:
        import onnxruntime as ort

        info["onnx_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnx_providers"] = []
    try:
        backend = load_backend(args.model, args.backend, args.device)
        info.update(backend.describe())
        info["notes"] = backend.notes
        info["model_error"] = None
    except NoModel as exc:
        info.update({"model": None, "trained": False, "model_error": str(exc)})
    print(json.dumps(info, indent=2))
    return EXIT_OK


def cmd_init(args):
    import torch

    from .config import DualTalkConfig
    from .model_file import save_checkpoint
    from .net import DualTalk

    cfg = DualTalkConfig.from_dict(json.loads(args.config)) if args.config else DualTalkConfig()
    torch.manual_seed(args.seed)
    save_checkpoint(args.out, DualTalk(cfg).eval(), trained=False, info={"seed": args.seed})
    print(f"wrote {args.out} (untrained, seed {args.seed})", file=sys.stderr)
    return EXIT_OK


def cmd_export(args):
    from .export import export_onnx

    export_onnx(args.checkpoint, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {"predict": cmd_predict, "serve": cmd_serve, "info": cmd_info, "init": cmd_init,
            "export": cmd_export}
