"""The runtime process and its JSONL pipe (no bpy here: the reader thread must never touch it).

One `RuntimeClient` is one `python -m model_runtime serve` process. A daemon thread reads stdout
and only queues parsed events; the main thread drains them in Job.tick(). stderr goes to a log
file so a full pipe can never block the runtime, and its last line explains a crash.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading

from ..model_runtime.paths import runtime_pythonpath
from ..model_runtime.request import PROTOCOL_VERSION

EXIT = "exit"  # synthetic event queued when the process's stdout closes


def protocol_problem(spoken):
    """None when a runtime that announced protocol `spoken` (its `ready` or `info`) is this add-on's
    partner; else one line saying which side is behind and what to do."""
    if spoken is None:
        spoken = 0  # runtimes from before the protocol had a number did not announce one
    if isinstance(spoken, bool) or not isinstance(spoken, int):
        return (f"the runtime announced protocol {str(spoken)[:40]!r}, this add-on needs {PROTOCOL_VERSION}: "
                "it is not a Duet runtime this add-on knows")
    if spoken == PROTOCOL_VERSION:
        return None
    # The runtime runs from the extension's own folder, so a mismatch means the add-on loaded in
    # Blender and the files on disk are different Duet versions (updated while Blender ran).
    older = spoken < PROTOCOL_VERSION
    return (f"the runtime speaks protocol {spoken}, this add-on needs {PROTOCOL_VERSION}: the runtime is "
            f"{'older' if older else 'newer'} than the add-on. Restart Blender so both load from the "
            "installed Duet extension; if that does not help, reinstall the extension")


def _tail(path, n=4000):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


class RuntimeClient:
    def __init__(self, python, model=None, backend="onnx", device="auto", log_path=None):
        self.python = python
        self.model = model or None
        self.backend = backend
        self.device = device
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"duet-runtime-{os.getpid()}.log")
        self.proc = None
        self.events = queue.Queue()
        self.info = None  # the "ready" event once seen
        self._reader = None
        self._log = None
        self._next_id = 0

    @property
    def key(self):
        return (self.python, self.model, self.backend, self.device)

    def command(self):
        cmd = [self.python, "-u", "-m", "model_runtime", "serve", "--backend", self.backend,
               "--device", self.device]
        if self.model:
            cmd += ["--model", self.model]
        return cmd

    def start(self):
        env = runtime_pythonpath()  # the runtime is a sub-package of the extension folder
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")  # one runtime at a time: its log alone explains its exit
        kwargs = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        # Raises OSError (FileNotFoundError, PermissionError) when the interpreter is unusable.
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=tempfile.gettempdir(), env=env, **kwargs)  # never litter the (read-only) extension
        self._reader = threading.Thread(target=self._read, name="duet-runtime-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self):
        proc = self.proc
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue  # stdout is protocol only; ignore anything else rather than die
                if isinstance(ev, dict):
                    self.events.put(ev)
        except (OSError, ValueError):
            pass
        code = proc.wait()
        self.events.put({"event": EXIT, "code": code})

    def new_id(self):
        self._next_id += 1
        return self._next_id

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, obj):
        """Write one request line; False when the process is gone."""
        if not self.alive:
            return False
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def last_error_line(self):
        """The runtime's last non-empty stderr line (a crash's reason)."""
        lines = [ln.strip() for ln in _tail(self.log_path).splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def stop(self, timeout=3.0):
        """Ask politely, then terminate, then kill. Safe to call twice."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.send({"op": "shutdown"})
            try:
                proc.stdin.close()  # EOF also tells the server to leave
            except OSError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(2.0)
        if self._reader is not None:
            self._reader.join(2.0)  # the process is gone, so its stdout is at EOF
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
            if proc.returncode == 0:  # a clean exit leaves nothing to explain: no litter in temp
                try:
                    os.remove(self.log_path)
                except OSError:
                    pass

    def kill(self):
        """For a runtime that no longer answers (e.g. a cancel that got no reply)."""
        if self.alive:
            self.proc.kill()
        self.stop(timeout=1.0)

