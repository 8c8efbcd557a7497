"""A test's side of `python -m model_runtime serve`: a real subprocess on pipes, bytes in, events out.

A thread reads stdout into a queue, so a missing answer fails the test after a timeout instead of
hanging it, and a stdout line that is not a JSON object (a stray print, a traceback) is kept as
`{"raw": line}` for the test to refuse.
"""

import json
import queue
import subprocess
import sys
import threading

from tests.conftest import REPO, runtime_env

TIMEOUT = 120  # seconds for one answer: generous, the tests share two cores


class ServeClient:
    def __init__(self, model, cwd=REPO, stderr=subprocess.DEVNULL):
        self.proc = subprocess.Popen([sys.executable, "-m", "model_runtime", "serve", "--model", str(model)],
                                     cwd=cwd, env=runtime_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr)
        self.events = queue.Queue()
        self.seen = []  # every event, in order
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            self.events.put(ev if isinstance(ev, dict) else {"raw": line.decode("utf-8", "replace")})
        self.events.put({"closed": True})

    def send(self, obj):
        """A dict (sent as JSON), a str or bytes (sent as they are); one line each."""
        if isinstance(obj, dict):
            obj = json.dumps(obj)
        data = obj.encode("utf-8") if isinstance(obj, str) else obj
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def event(self, timeout=TIMEOUT):
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer within {timeout} s") from None
        self.seen.append(ev)
        assert "raw" not in ev, f"stdout line that is not protocol: {ev['raw'][:500]!r}"
        assert not ev.get("closed"), "the server closed its stdout"
        return ev

    def answer(self, timeout=TIMEOUT):
        """(the next event that is not progress, the progress events before it)."""
        progress = []
        while True:
            ev = self.event(timeout)
            if ev.get("event") != "progress":
                return ev, progress
            progress.append(ev)

    def until(self, event, rid=None):
        """Read until `event`, an error or done (for `rid`, if given); returns it and all seen on the way."""
        seen = []
        while True:
            ev = self.event()
            seen.append(ev)
            if ev.get("event") in (event, "error", "done") and (rid is None or ev.get("id") == rid):
                return ev, seen

    def quiet(self, wait=0.3):
        """True when no event arrives within `wait` seconds."""
        try:
            ev = self.events.get(timeout=wait)
        except queue.Empty:
            return True
        self.seen.append(ev)
        return False

    def hello(self):
        self.send({"op": "hello"})
        ready = self.event()
        assert ready["event"] == "ready", ready
        return ready

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
