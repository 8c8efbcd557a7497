"""One prediction, files in and a file out: what `predict`, `serve` and the benchmark all run.

The request (request.py) is already validated; what is checked here is what only the files can
tell (the output folder, the audio, the partner motion), all before any network work.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from .audio import load_audio
from .backends import load_backend
from .errors import BadInput, Cancelled
from .inference import Predictor
from .motion_io import read_motion, write_motion
from .request import PredictRequest

Progress = Callable[[str, float], None]  # (stage, 0..1)
CancelCheck = Callable[[], bool]  # True once the caller wants the job stopped


def load_predictor(model: str | None = None, backend: str = "auto", device: str = "auto") -> Predictor:
    """The model loaded once (None: the shipped model), its notes and an untrained warning on stderr."""
    loaded = load_backend(model, backend, device)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    if not loaded.trained:
        print(f"warning: {loaded.path} is a randomly initialised, untrained network: its output is "
              "not animation", file=sys.stderr)
    return Predictor(loaded)


def run_predict(predictor: Predictor, request: PredictRequest, progress: Progress | None = None,
                cancel: CancelCheck | None = None) -> dict:
    """Run one request; the result is written to a temp file and renamed, so a failed or cancelled
    job leaves nothing behind. Returns the protocol's `done` fields."""
    out = request.out
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise BadInput(out, "output folder does not exist", code="bad_request")
    t0 = time.perf_counter()
    if progress:
        progress("audio", 0.0)
    self_track = load_audio(request.self_audio)
    partner_track = load_audio(request.partner) if request.partner else None
    motion = read_motion(request.partner_motion) if request.partner_motion else None
    result = predictor.predict(self_track, partner_track, motion, request.fps, progress, cancel,
                               request.liveliness, request.seed)
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
