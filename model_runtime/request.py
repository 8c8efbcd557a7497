"""One predict request, as the command line, the JSONL server, the benchmark and the add-on all
build it: its fields, its defaults and its validation live here and nowhere else.

Standard library only: the Blender add-on imports this module to build its requests, and
Blender's Python has no torch (and should not need numpy for this).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import BadInput, clip

# Sent in the server's `ready` event (and by `info`). Raise it whenever a request or an event
# changes shape, so an add-on and a runtime of different Duet versions refuse each other plainly
# instead of failing half-way through a job.
PROTOCOL_VERSION = 1

DEFAULT_FPS = 30.0
DEFAULT_LIVELINESS = True
DEFAULT_SEED = 0
MIN_FPS, MAX_FPS = 1.0, 1000.0
OUT_SUFFIXES = (".npz", ".csv")
MAX_ID_CHARS = 200  # a request id, as a string
MAX_ID_INT = 2**63 - 1

# Dataclass attribute -> JSON key where they differ (`self` cannot be an attribute name here).
_WIRE = {"self_audio": "self"}


class RequestError(BadInput):
    """A request field the caller got wrong. Message `field: problem`; protocol code bad_request,
    exit code 2 on the command line."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(None, f"{field}: {problem}", code="bad_request")


def _shown(value: Any) -> str:
    return clip(repr(value))


def _path(name: str, value: Any, required: bool) -> str | None:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value is None or (value == "" and not required):
        if required:
            raise RequestError(name, "missing: a file path is required")
        return None  # an empty optional path means "none", as the add-on sends it
    if not isinstance(value, str) or not value:
        raise RequestError(name, f"must be a non-empty path string, got {_shown(value)}")
    if "\0" in value:
        raise RequestError(name, f"must not contain a NUL character, got {_shown(value)}")
    return value


def check_id(value: Any) -> int | str:
    """A request id: echoed in every answer to the request, and what `cancel` names."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RequestError("id", f"must be an integer or a string, got {_shown(value)}")
    # Echoed whole in every progress event: bounded like any other value the caller sends.
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise RequestError("id", f"must be at most {MAX_ID_CHARS} characters, got {_shown(value)}")
    if isinstance(value, int) and not -MAX_ID_INT - 1 <= value <= MAX_ID_INT:
        raise RequestError("id", f"must be a 64-bit integer, got {_shown(value)}")
    return value


@dataclass(frozen=True)
class PredictRequest:
    """Two voice tracks (+ optional partner face) -> one result file. Constructing one validates it."""

    self_audio: str  # the character's own voice; `self` in JSON, `--self` on the command line
    out: str  # .npz or .csv (Live Link Face)
    partner: str | None = None  # the partner's voice; None: a silent partner
    partner_motion: str | None = None  # Live Link Face .csv or Duet .npz; None: face unknown
    fps: float = DEFAULT_FPS
    liveliness: bool = DEFAULT_LIVELINESS
    seed: int = DEFAULT_SEED
    id: int | str | None = None  # the protocol's request id; None on the command line

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # the dataclass is frozen
        put("self_audio", _path("self", self.self_audio, required=True))
        put("out", _path("out", self.out, required=True))
        if not self.out.lower().endswith(OUT_SUFFIXES):
            raise RequestError("out", f"must end in .npz or .csv, got {_shown(self.out)}")
        put("partner", _path("partner", self.partner, required=False))
        put("partner_motion", _path("partner_motion", self.partner_motion, required=False))
        fps = self.fps
        if isinstance(fps, bool) or not isinstance(fps, (int, float)):
            raise RequestError("fps", f"must be a number (frames per second), got {_shown(fps)}")
        if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
            raise RequestError("fps", f"must be a positive number from {MIN_FPS:g} to {MAX_FPS:g}, "
                                      f"got {_shown(fps)}")
        put("fps", float(fps))
        if not isinstance(self.liveliness, bool):
            raise RequestError("liveliness", f"must be true or false, got {_shown(self.liveliness)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise RequestError("seed", f"must be a whole number >= 0, got {_shown(self.seed)}")
        if self.id is not None:
            check_id(self.id)

    @classmethod
    def from_json(cls, obj: dict) -> PredictRequest:
        """A protocol `predict` object -> a request; RequestError naming the first bad field.
        Optional fields that are absent or null take their defaults; unknown keys are ignored."""
        if "id" not in obj:
            raise RequestError("id", "missing: a predict request needs an id to answer to")
        kwargs = {"id": check_id(obj["id"])}
        for name in ("self_audio", "out", "partner", "partner_motion", "fps", "liveliness", "seed"):
            key = _WIRE.get(name, name)
            if obj.get(key) is not None or name in ("self_audio", "out"):
                kwargs[name] = obj.get(key)
        return cls(**kwargs)

    def to_json(self) -> dict:
        """The protocol `predict` object (what the add-on sends)."""
        obj = {"op": "predict", "id": self.id}
        for name in ("self_audio", "partner", "partner_motion", "fps", "liveliness", "seed", "out"):
            obj[_WIRE.get(name, name)] = getattr(self, name)
        return obj
