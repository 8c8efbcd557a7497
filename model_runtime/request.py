"""The requests (one character: PredictRequest; a cast of any number: CastRequest), as the command
line, the JSONL server, the benchmark and the add-on all build them: their fields, their defaults and
their validation live here and nowhere else.

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
PROTOCOL_VERSION = 2

DEFAULT_FPS = 30.0
DEFAULT_LIVELINESS = True
DEFAULT_SEED = 0
DEFAULT_ATTENTION = True  # a cast's heads and eyes turn toward whoever speaks
MIN_FPS, MAX_FPS = 1.0, 1000.0
OUT_SUFFIXES = (".npz", ".csv")
MAX_ID_CHARS = 200  # a request id, as a string
MAX_ID_INT = 2**63 - 1
MAX_CAST = 16  # members of one cast
MAX_NAME_CHARS = 64  # a cast member's name: the command line makes a file name of it

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
        put("out", _out("out", self.out, required=True))
        put("partner", _path("partner", self.partner, required=False))
        put("partner_motion", _path("partner_motion", self.partner_motion, required=False))
        _check_take(self, put)

    @classmethod
    def from_json(cls, obj: dict) -> PredictRequest:
        """A protocol `predict` object -> a request; RequestError naming the first bad field.
        Optional fields that are absent or null take their defaults; unknown keys are ignored."""
        kwargs = {"id": _wire_id(obj, "predict")}
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


def _out(field: str, value: Any, required: bool) -> str | None:
    """A result path: _path's rules, and a name ending in .npz or .csv."""
    out = _path(field, value, required)
    if out is not None and not out.lower().endswith(OUT_SUFFIXES):
        raise RequestError(field, f"must end in .npz or .csv, got {_shown(out)}")
    return out


def _wire_id(obj: dict, op: str) -> int | str:
    if "id" not in obj:
        raise RequestError("id", f"missing: a {op} request needs an id to answer to")
    return check_id(obj["id"])


def _check_take(request: Any, put, flags=("liveliness",)) -> None:
    """The fields every request has, in this order: fps (stored as a float), its on/off flags, seed, id."""
    put("fps", _number_fps(request.fps))
    for name in flags:
        _check_flag(name, getattr(request, name))
    _check_seed(request.seed)
    if request.id is not None:
        check_id(request.id)


def _number_fps(fps: Any) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)):
        raise RequestError("fps", f"must be a number (frames per second), got {_shown(fps)}")
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise RequestError("fps", f"must be a positive number from {MIN_FPS:g} to {MAX_FPS:g}, "
                                  f"got {_shown(fps)}")
    return float(fps)


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise RequestError(name, f"must be true or false, got {_shown(value)}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RequestError("seed", f"must be a whole number >= 0, got {_shown(seed)}")


def check_member_name(field: str, name: Any) -> str:
    """A cast member's name: it keys the `outs` answer and the command line makes DIR/NAME.npz of it."""
    if not isinstance(name, str) or not name:
        raise RequestError(field, f"must be a non-empty string, got {_shown(name)}")
    if len(name) > MAX_NAME_CHARS:
        raise RequestError(field, f"must be at most {MAX_NAME_CHARS} characters, got {_shown(name)}")
    if any(c in name for c in "/\\\0") or name in (".", ".."):
        raise RequestError(field, f"must not contain a path separator or NUL, nor be . or .., "
                                  f"got {_shown(name)}")
    return name


@dataclass(frozen=True)
class CastMember:
    """One character of a cast: its voice track, and where its curves go (None: heard and looked at
    by the others, not animated)."""

    name: str
    voice: str
    out: str | None = None


@dataclass(frozen=True)
class CastRequest:
    """Any number of characters, one voice track each -> one result file per member with an out.
    Member k (0-based) takes seed + k for its liveliness and attention. Constructing one validates it;
    `members` may be CastMember objects or protocol member objects (dicts)."""

    members: tuple  # of CastMember, in the caller's order
    positions: str | None = None  # positions file (JSON); None: seated on a circle
    fps: float = DEFAULT_FPS
    liveliness: bool = DEFAULT_LIVELINESS
    attention: bool = DEFAULT_ATTENTION
    seed: int = DEFAULT_SEED
    id: int | str | None = None

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # the dataclass is frozen
        members = self.members
        if not isinstance(members, (list, tuple)) or not 1 <= len(members) <= MAX_CAST:
            raise RequestError("members", f"must be a list of 1 to {MAX_CAST} members, got {_shown(members)}")
        checked, names, outs = [], {}, {}
        for k, member in enumerate(members):
            field = f"members[{k}]"
            if isinstance(member, CastMember):
                name, voice, out = member.name, member.voice, member.out
            elif isinstance(member, dict):
                if "name" not in member or "voice" not in member:
                    raise RequestError(f"{field}.{'name' if 'name' not in member else 'voice'}",
                                       "missing: every member needs a name and a voice")
                name, voice, out = member["name"], member["voice"], member.get("out")
            else:
                raise RequestError(field, f"must be an object with name, voice and out, got {_shown(member)}")
            name = check_member_name(f"{field}.name", name)
            if name in names:
                raise RequestError(f"{field}.name", f"{_shown(name)} is also members[{names[name]}]'s name")
            names[name] = k
            voice = _path(f"{field}.voice", voice, required=True)
            out = _out(f"{field}.out", out, required=False)
            if out is not None:
                key = os.path.normcase(os.path.abspath(out))
                if key in outs:
                    raise RequestError(f"{field}.out", f"is also members[{outs[key]}]'s out, got {_shown(out)}")
                outs[key] = k
            checked.append(CastMember(name, voice, out))
        if not outs:
            raise RequestError("members", "no member has an out: there is nothing to write")
        put("members", tuple(checked))
        put("positions", _path("positions", self.positions, required=False))
        _check_take(self, put, ("liveliness", "attention"))

    @classmethod
    def from_json(cls, obj: dict) -> CastRequest:
        """A protocol `cast` object -> a request; RequestError naming the first bad field.
        Optional fields that are absent or null take their defaults; unknown keys are ignored."""
        kwargs = {"id": _wire_id(obj, "cast")}
        if obj.get("members") is None:
            raise RequestError("members", "missing: a cast needs a list of members")
        kwargs["members"] = obj["members"]
        for name in ("positions", "fps", "liveliness", "attention", "seed"):
            if obj.get(name) is not None:
                kwargs[name] = obj[name]
        return cls(**kwargs)

    def to_json(self) -> dict:
        """The protocol `cast` object (what the add-on sends)."""
        return {"op": "cast", "id": self.id,
                "members": [{"name": m.name, "voice": m.voice, "out": m.out} for m in self.members],
                "positions": self.positions, "fps": self.fps, "liveliness": self.liveliness,
                "attention": self.attention, "seed": self.seed}
