"""One prediction, files in and a file out: what `predict`, `serve` and the benchmark all run.

The request (request.py) is already validated; what is checked here is what only the files can
tell (the output folder, the audio, the partner motion), all before any network work.

The result is written to a hidden temp file beside the output and renamed over it, so a failed,
cancelled or stopped job leaves the old output (or none) and never a partial one. The temp file's
name carries the writer's pid: a run that was killed outright (SIGKILL cannot be caught) leaves
one behind, and the next run into that folder removes it once that pid is gone.

Heavy modules (scipy, the backends) are imported where they are used, so the command line can
refuse a bad output path in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import TYPE_CHECKING, Callable

from .errors import BadInput, Cancelled
from .request import PredictRequest

if TYPE_CHECKING:
    from .inference import Predictor

Progress = Callable[[str, float], None]  # (stage, 0..1)
CancelCheck = Callable[[], bool]  # True once the caller wants the job stopped

TEMP_MARK = ".duet-tmp-"
# `.NAME.duet-tmp-PID.EXT`: only files of exactly this shape are ever removed as stale.
TEMP_PATTERN = re.compile(r"\..+\.duet-tmp-(\d{1,10})(\.[A-Za-z]{1,8})?", re.S)
_TEMP_STEM = 100  # characters of the output's name kept in the temp name (a name is at most 255 bytes)


def temp_path(out: str, pid: int | None = None) -> str:
    """Where the result for `out` is written before it is renamed: same folder, so the rename is atomic."""
    folder, name = os.path.split(os.path.abspath(out))
    return os.path.join(folder, f".{name[:_TEMP_STEM]}{TEMP_MARK}{pid or os.getpid()}{os.path.splitext(name)[1]}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return not ok or code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False  # not a pid this system can have
    except OSError:
        return True  # EPERM: alive, another user's
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Remove the temp files of Duet runs that died before cleaning up; returns their names."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = TEMP_PATTERN.fullmatch(name)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass  # not ours to fight over: a later run tries again
    return removed


def remove_temp(path: str) -> None:
    """Remove a temp file if it is there."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def check_target(out: str, what: str = "a file ending in .npz or .csv") -> str:
    """BadInput (code bad_request) naming `out` unless it names a file (`what`) in an existing
    folder; returns that folder."""
    path = os.path.abspath(out)
    if os.path.isdir(path):
        raise BadInput(out, f"is a folder; name {what}", code="bad_request")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        problem = "the output folder is a file, not a folder" if os.path.exists(folder) else \
            "output folder does not exist"
        raise BadInput(out, problem, code="bad_request")
    return folder


def check_output(out: str) -> None:
    """BadInput (code bad_request) naming `out` unless a result can be written there: checked
    before the model, the audio or the network cost anything. Also sweeps stale temp files."""
    remove_stale_temps(check_target(out))
    # Only writing tells: permissions, ACLs, read-only mounts and root all defeat os.access.
    probe = temp_path(out)
    try:
        remove_temp(probe)  # ours by its pid: left by an earlier process that had this pid
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except OSError as exc:
        raise BadInput(out, f"cannot write in the output folder ({exc.strerror or exc})",
                       code="bad_request") from None
    remove_temp(probe)


def model_lines(backend) -> list[str]:
    """The stderr lines a loaded model comes with: its notes, and a warning if it is untrained."""
    lines = [f"note: {note}" for note in backend.notes]
    if not backend.trained:
        lines.append(f"warning: {backend.path} is a randomly initialised, untrained network: its output is "
                     "not animation")
    return lines


def load_predictor(model: str | None = None, backend: str = "auto", device: str = "auto",
                   announce: bool = True) -> Predictor:
    """The model loaded once (None: the shipped model). `announce`: print model_lines to stderr now
    (the command line prints them after a successful run instead, so a failure stays one line)."""
    from .backends import load_backend
    from .inference import Predictor

    loaded = load_backend(model, backend, device)
    if announce:
        for line in model_lines(loaded):
            print(line, file=sys.stderr)
    return Predictor(loaded)


def run_predict(predictor: Predictor, request: PredictRequest, progress: Progress | None = None,
                cancel: CancelCheck | None = None) -> dict:
    """Run one request; the result is written to a temp file and renamed, so a failed or cancelled
    job leaves nothing behind. Returns the protocol's `done` fields."""
    from .audio import load_audio
    from .motion_io import read_motion, write_motion

    out = request.out
    check_output(out)
    t0 = time.perf_counter()
    if progress:
        progress("audio", 0.0)
    self_track = partner_track = None
    try:
        # Loading is the "audio" stage: own track 0..0.5 (or 0..1 alone), partner 0.5..1.
        share = 0.5 if request.partner else 1.0
        stage = (lambda base: (lambda f: progress("audio", base + share * f))) if progress else (lambda base: None)
        self_track = load_audio(request.self_audio, cancel, stage(0.0))
        partner_track = load_audio(request.partner, cancel, stage(0.5)) if request.partner else None
        motion = read_motion(request.partner_motion) if request.partner_motion else None
        result = predictor.predict(self_track, partner_track, motion, request.fps, progress, cancel,
                                   request.liveliness, request.seed)
    finally:  # a long track lives in a temporary file: deleted whatever happened
        for track in (self_track, partner_track):
            if track is not None:
                track.close()
    del self_track, partner_track
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    tmp = temp_path(out)
    try:
        write_motion(tmp, result.weights, result.fps)
        os.replace(tmp, out)
    except OSError as exc:  # a disk that filled up, a folder removed meanwhile
        raise BadInput(out, f"cannot write the result ({exc.strerror or exc})", code="bad_request") from None
    finally:
        remove_temp(tmp)
    notes = result.notes + (motion.notes if motion is not None else [])
    return {"out": os.fspath(out), "frames": int(len(result.weights)), "fps": result.fps,
            "duration": result.duration, "seconds": round(time.perf_counter() - t0, 4),
            "notes": notes}
