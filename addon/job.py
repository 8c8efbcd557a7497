"""A generation job: the protocol state machine. `tick()` is the only place job state moves.

A plan is a list of steps, each one request: `Predict` (one character) or `Cast` (every member of
a cast in one request). In Blender a bpy.app.timers callback calls tick(); the PyPI bpy module fires
no timers, so tests and `generate(wait=True)` call it themselves. Nothing is written to the scene
before every step has succeeded; then `plan.finish` writes all of it at once (or nothing).
"""

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum

from ..model_runtime.request import DEFAULT_LIVELINESS, DEFAULT_SEED, CastRequest, PredictRequest
from . import runtime
from .client import EXIT, protocol_problem

# How much of one step each runtime stage fills, so the bar only moves forward: each stage reports
# its own 0..1 (loading an hour of audio takes seconds, the network most of the time). A cast
# reports audio (all its tracks) then network (its whole pass plan), so the same spans serve it.
STAGE_SPANS = {"audio": (0.0, 0.2), "features": (0.2, 0.25), "network": (0.25, 1.0)}


def step_fraction(stage, value):
    """A stage's progress value (0..1) -> the share of its step done."""
    lo, hi = STAGE_SPANS.get(stage, (0.0, 1.0))
    return lo + (hi - lo) * value


class JobState(Enum):
    NEW = "new"  # not started: the runtime is asked for on the first tick
    STARTING = "starting"  # `hello` sent to a fresh runtime, waiting for `ready`
    PREDICTING = "predicting"  # one request (predict or cast) out, waiting for its `done`
    CANCELLING = "cancelling"  # cancel sent, waiting for the runtime to confirm
    DONE = "done"  # every step succeeded and the keys were written
    FAILED = "failed"  # nothing was written; `message` says why
    CANCELLED = "cancelled"  # nothing was written


RUNNING = frozenset({JobState.NEW, JobState.STARTING, JobState.PREDICTING, JobState.CANCELLING})
STARTUP_TIMEOUT = 300.0  # first start imports torch/onnxruntime and loads the model: can be slow
CANCEL_TIMEOUT = 5.0
STALL_TIMEOUT = 600.0  # no event at all for this long while predicting: the runtime hangs

CODE_TEXT = {
    "bad_audio": "Bad audio",
    "bad_motion": "Bad partner motion",
    "no_model": "No model",
    "bad_request": "Runtime refused the request",
    "internal": "Runtime error",
}


@dataclass
class Predict:
    self_path: str
    partner_path: str = None
    partner_motion: object = None  # a path, or an int: the index of an earlier step whose result to use
    label: str = ""
    seed_offset: int = 0  # a conversation's second character gets its own blinks and gaze
    id: int = 0
    result: dict = None


@dataclass
class Cast:
    """Every member of a cast in one `cast` request, checked when the plan is built (its id is set
    when it is sent). Its `done` carries `outs`: member name -> result file."""

    request: CastRequest
    label: str = "cast"
    id: int = 0
    result: dict = None


@dataclass
class Plan:
    steps: list
    fps: float
    finish: object  # callable(list of "done" events) -> one-line message; writes the scene, all or nothing
    label: str = "Duet"
    liveliness: bool = DEFAULT_LIVELINESS  # the runtime's seeded blinks / gaze / head sway layer
    seed: int = DEFAULT_SEED
    work_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="duet-"))


@dataclass
class RuntimeConfig:
    python: str
    model: str = None
    backend: str = "onnx"
    device: str = "auto"


class Job:
    def __init__(self, plan, config, on_end=None):
        self.plan = plan
        self.config = config
        self.on_end = on_end
        self.state = JobState.NEW
        self.progress = 0.0
        self.stage = "starting runtime"
        self.message = ""
        self.client = None
        self.step = 0
        self._since = time.monotonic()

    # --- public -----------------------------------------------------------------------------
    @property
    def running(self):
        return self.state in RUNNING

    def tick(self):
        """Advance the job from whatever the runtime has said since the last call. True while running."""
        if not self.running:
            return False
        try:
            self._tick()
        except Exception as exc:  # a bug must end the job cleanly, never leave it half-way
            self._end(JobState.FAILED, f"Duet failed: {type(exc).__name__}: {exc}. Nothing was changed.")
        return self.running

    def cancel(self):
        if self.state in (JobState.NEW, JobState.STARTING):
            self._end(JobState.CANCELLED, "Duet: cancelled; nothing was changed.")
        elif self.state is JobState.PREDICTING:
            self.client.send({"op": "cancel", "id": self.plan.steps[self.step].id})
            self.state, self.stage, self._since = JobState.CANCELLING, "cancelling", time.monotonic()

    def run(self, timeout=None, poll=0.02):
        """Tick until the job ends (scripts, tests, generate(wait=True))."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.tick():
            if end is not None and time.monotonic() > end:
                self.cancel()
                end = None
            time.sleep(poll)
        return self.state

    def cleanup(self):
        shutil.rmtree(self.plan.work_dir, ignore_errors=True)

    # --- state machine ------------------------------------------------------------------------
    def _tick(self):
        if self.state is JobState.NEW:
            try:
                self.client = runtime.get_client(self.config.python, self.config.model,
                                                 self.config.backend, self.config.device)
            except OSError as exc:
                return self._end(JobState.FAILED, f"Duet: the runtime could not start ({exc}). "
                                                  "Nothing was changed.")
            if self.client.info is None:
                self.client.send({"op": "hello"})
                self.state, self._since = JobState.STARTING, time.monotonic()
            else:
                self._send_step()
            return
        for ev in self.client.drain():
            self._event(ev)
            if not self.running:
                return
        waited = time.monotonic() - self._since
        if self.state is JobState.STARTING and waited > STARTUP_TIMEOUT:
            runtime.drop_client(self.client, kill=True)
            self._end(JobState.FAILED, f"Duet: the runtime did not start within {STARTUP_TIMEOUT:.0f} s. "
                                       "Nothing was changed.")
        elif self.state is JobState.CANCELLING and waited > CANCEL_TIMEOUT:
            runtime.drop_client(self.client, kill=True)  # it ignored the cancel: stop it for good
            self._end(JobState.CANCELLED, "Duet: cancelled; nothing was changed.")
        elif self.state is JobState.PREDICTING and waited > STALL_TIMEOUT:
            runtime.drop_client(self.client, kill=True)
            self._end(JobState.FAILED, "Duet: the runtime stopped answering. Nothing was changed.")

    def _event(self, ev):
        kind = ev.get("event")
        if kind == EXIT:
            runtime.drop_client(self.client)
            if self.state is JobState.CANCELLING:
                return self._end(JobState.CANCELLED, "Duet: cancelled; nothing was changed.")
            code = ev.get("code")
            if isinstance(code, int) and code < 0:  # a signal: its stderr has nothing to say about it
                what = f"the runtime was killed (signal {-code})"
            else:
                why = self.client.last_error_line()
                what = f"the runtime stopped unexpectedly (exit code {code}){': ' + why if why else ''}"
            return self._end(JobState.FAILED, f"Duet: {what}. Nothing was changed.")
        if kind == "ready":
            problem = protocol_problem(ev.get("protocol"))
            if problem is not None:  # every request would be misread: stop before sending one
                runtime.drop_client(self.client)
                return self._end(JobState.FAILED, f"Duet: {problem}. Nothing was changed.")
            self.client.info = ev
            if self.state is not JobState.STARTING:
                return
            if ev.get("model_error"):
                return self._end(JobState.FAILED, f"Duet: no usable model: {ev['model_error']}. "
                                                  "Nothing was changed.")
            return self._send_step()
        step = self.plan.steps[self.step] if self.step < len(self.plan.steps) else None
        if step is None or ev.get("id") != step.id:
            return  # a late event of an earlier, cancelled request
        self._since = time.monotonic()
        if kind == "progress":
            value = min(max(float(ev.get("value", 0.0)), 0.0), 1.0)
            self.progress = (self.step + step_fraction(ev.get("stage"), value)) / len(self.plan.steps)
            self.stage = f"{step.label + ': ' if step.label else ''}{ev.get('stage', '')}"
        elif kind == "error":
            code = ev.get("code", "internal")
            if code == "cancelled" or self.state is JobState.CANCELLING:
                return self._end(JobState.CANCELLED, "Duet: cancelled; nothing was changed.")
            what = CODE_TEXT.get(code, "Runtime error")
            return self._end(JobState.FAILED, f"Duet: {what}: {ev.get('message', '')}. Nothing was changed.")
        elif kind == "done":
            if self.state is JobState.CANCELLING:
                return self._end(JobState.CANCELLED, "Duet: cancelled; nothing was changed.")
            step.result = ev
            self.step += 1
            if self.step < len(self.plan.steps):
                return self._send_step()
            self.stage, self.progress = "writing keys", 1.0
            try:
                msg = self.plan.finish([s.result for s in self.plan.steps])
            except Exception as exc:
                return self._end(JobState.FAILED, f"Duet: writing keys failed: {exc}. Nothing was changed.")
            return self._end(JobState.DONE, "; ".join([msg] + self._runtime_notes()))

    def _runtime_notes(self):
        """What the artist should know about how it ran (CPU fallback, an untrained model)."""
        info = self.client.info or {}
        notes = [str(n) for n in info.get("notes") or []]
        for s in self.plan.steps:
            notes += [str(n) for n in (s.result or {}).get("notes") or [] if str(n) not in notes]
        if info.get("trained") is False:
            notes.append("the model is untrained (random weights): the curves are not animation")
        return [" ".join(n.split()) for n in notes]  # one line, whatever the runtime wrote

    def _send_step(self):
        step = self.plan.steps[self.step]
        step.id = self.client.new_id()
        if isinstance(step, Cast):
            req = dataclasses.replace(step.request, id=step.id)
        else:
            motion = step.partner_motion
            if isinstance(motion, int):
                motion = self.plan.steps[motion].result["out"]
            req = PredictRequest(self_audio=step.self_path,
                                 out=os.path.join(self.plan.work_dir, f"step{self.step}.npz"),
                                 partner=step.partner_path, partner_motion=motion, fps=self.plan.fps,
                                 liveliness=self.plan.liveliness, seed=self.plan.seed + step.seed_offset,
                                 id=step.id)
        self.client.send(req.to_json())  # if the pipe is gone, the reader's exit event says why on a later tick
        self.state, self.stage, self._since = JobState.PREDICTING, "predicting", time.monotonic()

    def _end(self, state, message):
        self.state, self.message = state, message
        if state is not JobState.DONE:
            self.progress = 0.0
        if self.on_end is not None:
            self.on_end(self)
