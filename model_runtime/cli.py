"""Command line (a contract: other tools call it exactly): predict / cast / serve / info, plus init and export.

Exit codes of predict and cast: 0 done; 2 bad input (one line on stderr naming the file, option or field
and the problem, no traceback; a mistaken option too); 1 internal error; 128 + N stopped by
signal N (SIGTERM 143, SIGINT 130), leaving no partial or temporary file.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import traceback

from . import __version__
from .errors import BadInput, NoModel, clip
from .request import (
    DEFAULT_ATTENTION,
    DEFAULT_FPS,
    DEFAULT_LIVELINESS,
    DEFAULT_SEED,
    PROTOCOL_VERSION,
    CastMember,
    CastRequest,
    PredictRequest,
    RequestError,
)

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse whose refusals keep the contract: one `error:` line and exit 2, not the usage block
    (a caller reading stderr gets the mistake, a person gets pointed to --help)."""

    def error(self, message):
        message = re.sub(r"^argument ([^:/ ]+)(/[^: ]+)?: ", r"\1: ", message)  # "argument --fps: ..."
        sys.stderr.write(f"error: {clip(message, 300)} (see {self.prog} --help)\n")
        sys.exit(EXIT_BAD_INPUT)


def _number(text):
    """--fps as a number where it reads as one; otherwise the text itself, so that PredictRequest
    refuses it in the words the server uses for the same mistake."""
    try:
        return float(text)
    except ValueError:
        return text


def _whole(text):
    """--seed, passed on like _number (1.5 stays 1.5, for the request to refuse)."""
    try:
        return int(text)
    except ValueError:
        return _number(text)


class Stopped(BaseException):
    """SIGTERM or SIGINT, raised in the main thread wherever it is so that every `finally` on the way
    out removes what it made (the temp file). A BaseException: no `except Exception` swallows it."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_on_signals():
    fired = []

    def handler(signum, frame):
        if fired:
            return  # a second signal must not cut short the cleanup the first one started
        fired.append(signum)
        raise Stopped(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue  # started with it ignored (a background job): keep it so
            previous[sig] = signal.signal(sig, handler)
        except ValueError:
            pass  # not the main thread (an embedding caller): its signals are its own
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _add_model_args(p):
    p.add_argument("--model", default=None, help="model file (.onnx or .pt); default: the shipped model")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "gpu"])


def build_parser():
    ap = _Parser(prog="python -m model_runtime", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="two voice tracks -> 55 ARKit + head curves (.npz or LLF .csv)")
    p.add_argument("--self", dest="self_audio", required=True, help="the character's own voice")
    p.add_argument("--partner", default=None, help="the partner's voice (omit: silent partner)")
    p.add_argument("--partner-motion", default=None,
                   help="the partner's face: Live Link Face .csv or Duet .npz (omit: unknown)")
    p.add_argument("--fps", type=_number, default=DEFAULT_FPS, help="output frame rate, e.g. 24, 29.97, 60")
    p.add_argument("--out", required=True, help="result file: .npz or .csv (Live Link Face)")
    on_off = "on" if DEFAULT_LIVELINESS else "off"
    p.add_argument("--liveliness", default=on_off, choices=["on", "off"],
                   help=f"add seeded blinks, gaze shifts and idle head sway (default {on_off})")
    p.add_argument("--seed", type=_whole, default=DEFAULT_SEED,
                   help="seed of the head sway and the liveliness layer (same seed, same result; never the mouth)")
    _add_model_args(p)
    c = sub.add_parser("cast", help="any number of voice tracks -> one result per character (DIR/NAME.npz)")
    c.add_argument("--voice", action="append", required=True, metavar="NAME=PATH",
                   help="a character and its voice track; once per character, in order")
    c.add_argument("--positions", default=None,
                   help="positions file (JSON): where each character sits and faces (default: a circle)")
    c.add_argument("--fps", type=_number, default=DEFAULT_FPS, help="output frame rate, e.g. 24, 29.97, 60")
    c.add_argument("--seed", type=_whole, default=DEFAULT_SEED,
                   help="seed of the head sway, liveliness and attention takes (character k uses seed + k)")
    c.add_argument("--liveliness", default=on_off, choices=["on", "off"],
                   help=f"add seeded blinks, gaze shifts and idle head sway (default {on_off})")
    att = "on" if DEFAULT_ATTENTION else "off"
    c.add_argument("--attention", default=att, choices=["on", "off"],
                   help=f"turn heads and eyes toward whoever speaks (default {att})")
    c.add_argument("--format", default="npz", choices=["npz", "csv"], help="result files: .npz or Live Link Face .csv")
    c.add_argument("--out", required=True, help="an existing folder: one NAME.npz (or .csv) per character")
    _add_model_args(c)
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
        if args.command not in ("predict", "cast"):
            return COMMANDS[args.command](args)
        with _stop_on_signals():
            return COMMANDS[args.command](args)
    except Stopped as exc:
        print(f"error: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except (BadInput, NoModel) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return EXIT_INTERNAL


def predict_request(args):
    """The command line's arguments as the one request type, validated as the server validates
    its requests (RequestError: exit code 2, one line naming the option)."""
    return PredictRequest(self_audio=args.self_audio, out=args.out, partner=args.partner,
                          partner_motion=args.partner_motion, fps=args.fps,
                          liveliness=args.liveliness == "on", seed=args.seed)


def cmd_predict(args):
    from .predict import check_output, load_predictor, run_predict

    request = predict_request(args)  # before the model loads: a typo costs no seconds,
    check_output(request.out)  # nor does an output that could not be written
    predictor = load_predictor(args.model, args.backend, args.device, announce=False)
    done = run_predict(predictor, request)
    _model_lines_and_notes(predictor, done)
    print(f"wrote {done['out']}: {done['frames']} frames at {done['fps']:g} fps "
          f"({done['duration']:.2f} s of audio) in {done['seconds']:.2f} s", file=sys.stderr)
    return EXIT_OK


def _model_lines_and_notes(predictor, done):
    """After a successful run (so a refusal stays one line): the model's notes and warning, the run's notes."""
    from .predict import model_lines

    for line in model_lines(predictor.backend):
        print(line, file=sys.stderr)
    for note in done["notes"]:
        print(f"note: {note}", file=sys.stderr)


def cast_request(args):
    """The command line's arguments as a CastRequest (RequestError: exit code 2, one line), outs
    DIR/NAME.FORMAT; the folder must exist (each out is checked by cmd_cast's check_output)."""
    folder = args.out
    if not os.path.isdir(folder):
        problem = "is a file, not a folder" if os.path.exists(folder) else "output folder does not exist"
        raise BadInput(folder, f"{problem} (--out names the folder the results go in)", code="bad_request")
    members, seen = [], {}
    for text in args.voice:
        name, eq, path = text.partition("=")
        if not eq:
            raise RequestError("--voice", f"expected NAME=PATH, got {clip(repr(text))}")
        members.append(CastMember(name, path, os.path.join(folder, f"{name}.{args.format}")))
        key = name.casefold()  # one file on a disk that ignores letter case (Windows, macOS)
        if key in seen and seen[key] != name:
            raise RequestError("--voice", f"{clip(repr(seen[key]))} and {clip(repr(name))} would be one file "
                                          "on a disk that ignores letter case")
        seen[key] = name
    return CastRequest(members=members, positions=args.positions, fps=args.fps, seed=args.seed,
                       liveliness=args.liveliness == "on", attention=args.attention == "on")


def cmd_cast(args):
    from .cast import read_positions, run_cast
    from .predict import check_output, load_predictor

    request = cast_request(args)  # before the model loads, as predict
    for m in request.members:
        check_output(m.out)
    if request.positions:
        read_positions(request.positions, [m.name for m in request.members])
    predictor = load_predictor(args.model, args.backend, args.device, announce=False)
    done = run_cast(predictor, request)
    _model_lines_and_notes(predictor, done)
    print(f"wrote {len(done['outs'])} files in {args.out}: {done['frames']} frames each at {done['fps']:g} fps "
          f"({done['duration']:.2f} s of audio) in {done['seconds']:.2f} s", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args):
    from .server import serve

    return serve(args)


def cmd_info(args):
    from .backends import available_backends, load_backend

    info = {"version": __version__, "protocol": PROTOCOL_VERSION, "backends": available_backends(),
            "python": sys.executable}
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
    from .predict import check_target

    check_target(args.out, "the model file to write")  # before torch loads
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
    from .predict import check_target

    check_target(args.out, "the model file to write")
    from .export import export_onnx

    export_onnx(args.checkpoint, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {"predict": cmd_predict, "cast": cmd_cast, "serve": cmd_serve, "info": cmd_info, "init": cmd_init,
            "export": cmd_export}
