"""`python -m model_runtime serve`: the JSONL server the Blender add-on talks to.

One JSON object per line each way. stdout carries protocol only: anything else that prints
(a library, a stray debug line) is sent to stderr. The model loads once; jobs run one after
another on the main thread while a reader thread takes requests, so `cancel` lands mid-job.
"""

import json
import queue
import sys
import threading
import traceback

from . import __version__
from .errors import BadInput, Cancelled, NoModel, clip
from .predict import load_predictor, run_predict
from .request import PROTOCOL_VERSION, PredictRequest, RequestError, check_id

PROGRESS_STEP = 0.05  # progress events at most every 5 %: the pipe is not a log
MESSAGE_LIMIT = 1000  # an error message quotes at most this much, whatever an exception carried


class Channel:
    """Writes protocol events to the real stdout, one line each, thread-safe."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, **event):
        line = json.dumps(event, separators=(",", ":"))
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Server:
    def __init__(self, args, channel):
        self.args, self.channel = args, channel
        self.jobs = queue.Queue()
        self.cancelled = set()  # ids asked to cancel (running or queued)
        self.current = None
        self.lock = threading.Lock()
        self.predictor, self.model_error = None, None
        self.stopping = False
        try:
            self.predictor = load_predictor(args.model, args.backend, args.device)
        except NoModel as exc:
            self.model_error = str(exc)
            print(f"error: {exc}", file=sys.stderr)

    def ready_event(self):
        from .backends import available_backends

        desc = self.predictor.backend.describe() if self.predictor else {}
        return dict(event="ready", version=__version__, protocol=PROTOCOL_VERSION, backends=available_backends(),
                    backend=desc.get("backend"), device=desc.get("device"),
                    provider=desc.get("provider"), gpu=desc.get("gpu"), model=desc.get("model"),
                    trained=desc.get("trained", False), model_error=self.model_error,
                    notes=self.predictor.backend.notes if self.predictor else [])

    # -- reader thread: never runs a job, only routes requests --------------------------------
    def read_requests(self, stream):
        for raw in stream:
            line = raw.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                    raise ValueError("a request is a JSON object with an 'op'")
            except ValueError as exc:
                self.error(None, "bad_request", f"malformed request line ({exc}): {line[:80]}")
                continue
            op, rid = req["op"], req.get("id")
            try:
                if op == "hello":
                    self.channel.send(**self.ready_event())
                elif op == "predict":
                    # Validated once, here: a bad field is answered at once, and jobs only ever
                    # see a well-formed request.
                    self.jobs.put(PredictRequest.from_json(req))
                elif op == "cancel":
                    rid = check_id(rid)  # a list or an object as id would break the cancel set
                    with self.lock:
                        self.cancelled.add(rid)
                elif op == "shutdown":
                    with self.lock:
                        self.stopping = True  # queued jobs are dropped, the running one cancelled
                        if self.current is not None:
                            self.cancelled.add(self.current)
                    break
                else:
                    raise RequestError("op", f"unknown op {clip(repr(op))}")
            except RequestError as exc:
                self.error(_echo_id(rid), exc.code, str(exc))
        self.jobs.put(None)  # shutdown or stdin closed: finish after the current job

    def error(self, rid, code, message):
        self.channel.send(id=rid, event="error", code=code, message=clip(message, MESSAGE_LIMIT))

    # -- main thread: jobs, one at a time -----------------------------------------------------
    def run(self):
        while True:
            req = self.jobs.get()
            if req is None:
                break
            self.run_job(req)
        self.channel.send(event="bye")
        return 0

    def run_job(self, req: PredictRequest):
        rid = req.id
        with self.lock:
            if rid in self.cancelled or self.stopping:
                self.cancelled.discard(rid)
                self.error(rid, "cancelled", "cancelled before start")
                return
            self.current = rid
        last = {"stage": None, "value": -1.0}

        def progress(stage, value):
            if stage != last["stage"] or value - last["value"] >= PROGRESS_STEP or value >= 1.0:
                last.update(stage=stage, value=value)
                self.channel.send(id=rid, event="progress", stage=stage, value=round(float(value), 4))

        def cancel():
            with self.lock:
                return rid in self.cancelled

        try:
            if self.predictor is None:
                raise NoModel(self.model_error)
            done = run_predict(self.predictor, req, progress, cancel)
            self.channel.send(id=rid, event="done", **done)
        except (BadInput, NoModel, Cancelled) as exc:
            self.error(rid, getattr(exc, "code", "bad_input"), str(exc))
        except Exception as exc:
            traceback.print_exc()
            self.error(rid, "internal", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        finally:
            with self.lock:
                self.current = None
                self.cancelled.discard(rid)


def _echo_id(rid):
    """The id to answer a refused request with: its own when well-formed, else null."""
    try:
        return check_id(rid)
    except RequestError:
        return None


def serve(args):
    channel = Channel(sys.stdout)
    sys.stdout = sys.stderr  # a stray print can no longer corrupt the protocol stream
    server = Server(args, channel)
    reader = threading.Thread(target=server.read_requests, args=(sys.stdin,), daemon=True)
    reader.start()
    return server.run()
