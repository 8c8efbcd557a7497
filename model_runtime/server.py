"""`python -m model_runtime serve`: the JSONL server the Blender add-on talks to.

One JSON object per line each way. stdout carries protocol only: anything else that prints
(a library, a stray debug line) is sent to stderr. The model loads once; jobs run one after
another on the main thread while a reader thread takes requests, so `cancel` lands mid-job.

No request line can stop the server: every line is answered on its own (a refused one with
`bad_request`), and if the reader thread ends for any reason at all the server shuts down as it
does on `shutdown`, rather than live on without ears.
"""

import json
import queue
import sys
import threading
import traceback

from . import __version__
from .cast import run_cast
from .errors import BadInput, Cancelled, NoModel, clip
from .predict import load_predictor, run_predict
from .request import PROTOCOL_VERSION, CastRequest, PredictRequest, RequestError, check_id

PROGRESS_STEP = 0.05  # progress events at most every 5 %: the pipe is not a log
MESSAGE_LIMIT = 1000  # an error message quotes at most this much, whatever an exception carried
# A real request is well under a kilobyte; a longer line is refused without being held whole,
# so a runaway writer cannot make the server swallow gigabytes.
LINE_LIMIT = 16 * 1024 * 1024
LINE_EXCERPT = 80  # characters of a malformed line quoted back
JSON_SPACE = b" \t\r\n"  # the whitespace JSON itself allows around a value
OPS = ("hello", "predict", "cast", "cancel", "shutdown")


class Channel:
    """Writes protocol events to the real stdout, one line each, thread-safe."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, **event):
        line = json.dumps(event, separators=(",", ":"))  # ASCII: any text in an event stays one line
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the caller stopped reading: nobody is left to tell, and stdin's end will stop us


class Job:
    """One accepted predict or cast request, from the queue until its final answer."""

    def __init__(self, request: PredictRequest | CastRequest):
        self.request = request
        self.cancelled = None  # why it was cancelled, once it is: read by the job between batches


def read_lines(stream, limit=LINE_LIMIT):
    """Yields each line of a binary stream as bytes, or None for a line longer than `limit`
    (whose bytes are skipped, never held whole)."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:  # skip the rest of the line
                more = stream.readline(limit)
                if not more or more.endswith(b"\n"):
                    break
            yield None
        else:
            yield raw


def parse_line(raw):
    """One request line (bytes) -> the request object; RequestError (field `request`) if it is
    not a JSON object. None for a blank line, which needs no answer."""
    if raw is None:
        raise RequestError("request", f"line longer than {LINE_LIMIT // (1024 * 1024)} MiB")
    raw = raw.strip(JSON_SPACE)
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("request", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise RequestError("request", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        why = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise RequestError("request", f"not JSON ({clip(why, LINE_EXCERPT)}): {_excerpt(text)}") from None
    if not isinstance(obj, dict):
        raise RequestError("request", f"must be a JSON object with an 'op', got {type(obj).__name__} "
                                      f"{clip(repr(obj), LINE_EXCERPT)}")
    return obj


def _excerpt(text):
    """The start of a refused line, quoted on one line, and its length when it was cut."""
    shown = repr(text[:LINE_EXCERPT])
    return shown if len(text) <= LINE_EXCERPT else f"{shown}... ({len(text)} characters)"


class Server:
    def __init__(self, channel, predictor=None, model_error=None):
        self.channel = channel
        self.predictor, self.model_error = predictor, model_error
        self.jobs = queue.Queue()
        self.pending = []  # accepted jobs not yet answered, queued or running: all that cancel can reach
        self.lock = threading.Lock()

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
        """Route every line of `stream` (binary) until `shutdown` or its end. Whatever happens
        here, the server is told to stop when this returns, so it never outlives its reader."""
        try:
            for raw in read_lines(stream):
                if self.handle_line(raw):
                    break
        except BaseException:  # the stream itself failed: say why on stderr, then shut down
            traceback.print_exc()
        finally:
            self.stop("the server is shutting down")

    def handle_line(self, raw) -> bool:
        """Answer one request line; True for `shutdown`. Never raises: one line cannot stop the reader."""
        rid = None
        try:
            req = parse_line(raw)
            if req is None:
                return False
            rid = req.get("id")
            return self.route(req)
        except RequestError as exc:
            self.error(_echo_id(rid), exc.code, str(exc))
        except RecursionError:  # a value nested just under json's limit can still overflow a repr
            self.error(_echo_id(rid), "bad_request", "request: JSON nested too deeply")
        except Exception as exc:  # a bug here must cost one answer, not the reader
            traceback.print_exc()
            self.error(_echo_id(rid), "internal", f"{type(exc).__name__}: {_first_line(exc)}")
        return False

    def route(self, req: dict) -> bool:
        if "op" not in req:
            raise RequestError("op", f"missing: expected one of {', '.join(OPS)}")
        op = req["op"]
        if not isinstance(op, str):
            raise RequestError("op", f"must be a string, got {clip(repr(op))}")
        if op == "hello":
            self.channel.send(**self.ready_event())
        elif op in ("predict", "cast"):
            # Validated once, here: a bad field is answered at once, and jobs only ever see a
            # well-formed request.
            job = Job((PredictRequest if op == "predict" else CastRequest).from_json(req))
            with self.lock:
                self.pending.append(job)
            self.jobs.put(job)
        elif op == "cancel":
            if "id" not in req:
                raise RequestError("id", "missing: cancel names the id of a queued or running job")
            rid = check_id(req["id"])
            with self.lock:
                # Only what exists now: an id not seen yet must not cancel a later job that takes it.
                hits = [job for job in self.pending if job.request.id == rid]
                for job in hits:
                    job.cancelled = job.cancelled or "cancelled"
            if not hits:
                raise RequestError("id", "no queued or running job with this id")
        elif op == "shutdown":
            return True
        else:
            raise RequestError("op", f"unknown op {clip(repr(op))}; expected one of {', '.join(OPS)}")
        return False

    def stop(self, why):
        """Queued jobs dropped and the running one cancelled (each answered `cancelled`), then `bye`."""
        with self.lock:
            for job in self.pending:
                job.cancelled = job.cancelled or why
        self.jobs.put(None)

    def error(self, rid, code, message):
        self.channel.send(id=rid, event="error", code=code, message=clip(message, MESSAGE_LIMIT))

    # -- main thread: jobs, one at a time -----------------------------------------------------
    def run(self):
        while True:
            job = self.jobs.get()
            if job is None:
                break
            self.run_job(job)
        self.channel.send(event="bye")
        return 0

    def run_job(self, job: Job):
        req, rid = job.request, job.request.id
        last = {"stage": None, "value": -1.0}

        def progress(stage, value):
            if stage != last["stage"] or value - last["value"] >= PROGRESS_STEP or value >= 1.0:
                last.update(stage=stage, value=value)
                self.channel.send(id=rid, event="progress", stage=stage, value=round(float(value), 4))

        if job.cancelled:
            final = dict(event="error", code="cancelled", message=f"{job.cancelled} before the job started")
        else:
            try:
                if self.predictor is None:
                    raise NoModel(self.model_error)
                run = run_cast if isinstance(req, CastRequest) else run_predict
                final = dict(event="done", **run(self.predictor, req, progress, lambda: bool(job.cancelled)))
            except Cancelled:
                final = dict(event="error", code="cancelled", message=job.cancelled or "cancelled")
            except (BadInput, NoModel) as exc:
                final = dict(event="error", code=getattr(exc, "code", "bad_input"), message=str(exc))
            except Exception as exc:
                traceback.print_exc()
                final = dict(event="error", code="internal", message=f"{type(exc).__name__}: {_first_line(exc)}")
        if "message" in final:
            final["message"] = clip(final["message"], MESSAGE_LIMIT)
        with self.lock:
            # Leaving `pending` and answering are one step, so a cancel read after this answer
            # finds nothing and says so, and one read before it is honoured or crossed by `done`.
            self.pending.remove(job)
            self.channel.send(id=rid, **final)


def _first_line(exc):
    text = str(exc)
    return text.splitlines()[0] if text.strip() else ""


def _echo_id(rid):
    """The id to answer a refused request with: its own when well-formed, else null."""
    try:
        return check_id(rid)
    except RequestError:
        return None


def serve(args):
    channel = Channel(sys.stdout)
    sys.stdout = sys.stderr  # a stray print can no longer corrupt the protocol stream
    predictor, model_error = None, None
    try:
        predictor = load_predictor(args.model, args.backend, args.device)
    except NoModel as exc:
        model_error = str(exc)
        print(f"error: {exc}", file=sys.stderr)
    server = Server(channel, predictor, model_error)
    # Bytes, decoded line by line: one line of invalid UTF-8 is refused alone instead of
    # breaking the text reader for every line after it.
    reader = threading.Thread(target=server.read_requests, args=(sys.stdin.buffer,), daemon=True)
    reader.start()
    return server.run()
