"""What every part of `make demo` shares: the people, their two errors, and progress on the terminal.

The demo's modules: demo.py (the steps, in order), demo_scene.py (voices in, the scene, generation,
exports), demo_render.py (preview frames, demo.mp4 and its check), demo_pictures.py (contact
sheet, curve plot), demo_head.py (the head itself).
"""

import math
import os
import sys
import time
from contextlib import contextmanager

FPS = 25                  # the scene's frame rate: the network's own, so curves need no resampling
PEOPLE = ("Alex", "Sam", "Kim")  # speak the sample's tracks a, b, c in that order
NAMES = PEOPLE[:2]        # the two-person demo: Alex speaks --self (a.wav), Sam speaks --partner (b.wav)
CAST_SIZES = (2, 3)       # `--cast N`: the shipped sample with N people (assets/sample, assets/sample_cast)
TURN = math.radians(45)   # rest yaw: each faces the other, turned this much from the camera


class DemoError(Exception):
    """A check failed or something needed is missing (exit 1)."""


class BadInputError(Exception):
    """The user's to fix: one line naming the file (exit 2)."""


class Steps:
    """`with steps("title"):` prints "[i/total] title ..." and its time; summary() lists them all."""

    def __init__(self, total):
        self.total, self.n, self.times = total, 0, []
        self.t0 = time.monotonic()

    @contextmanager
    def __call__(self, title):
        self.n += 1
        say(f"[{self.n}/{self.total}] {title} ...")
        t = time.monotonic()
        yield
        dt = time.monotonic() - t
        self.times.append((title, dt))
        say(f"      {title}: {dt:.1f} s")

    def summary(self):
        width = max(len(t) for t, _ in self.times)
        lines = [f"  {t:<{width}}  {dt:6.1f} s" for t, dt in self.times]
        lines.append(f"  {'total':<{width}}  {time.monotonic() - self.t0:6.1f} s")
        return "\n".join(lines)


_out_fd = None  # the terminal's stdout while Blender's own per-frame chatter goes to a log


def say(msg):
    if _out_fd is None:
        print(msg, flush=True)
    else:
        os.write(_out_fd, (msg + "\n").encode())


@contextmanager
def blender_output_to(log_path):
    """Send what Blender prints (per-frame render lines, EGL notes) to a log; say() still prints."""
    global _out_fd
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    _out_fd = saved[0]
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        _out_fd = None
