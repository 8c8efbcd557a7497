"""Finding, checking, setting up and keeping the runtime process (bpy only where noted).

One warm runtime is kept between generations (its start-up costs seconds: imports, model load);
it is restarted when the preferences that define it change, and stopped on unregister.
"""

import json
import os
import subprocess
import sys
import tempfile

from ..model_runtime.paths import ROOT, runtime_pythonpath
from .client import RuntimeClient, protocol_problem

DEVICES = {"AUTO": "auto", "GPU": "cuda", "CPU": "cpu"}
_BIN = "Scripts" if sys.platform == "win32" else "bin"
_EXE = "python.exe" if sys.platform == "win32" else "python"

_client = None


def user_dir():
    """A writable folder of the extension's own (the installed folder may be wiped or read-only)."""
    import bpy

    pkg = __package__.rpartition(".")[0]
    try:
        return bpy.utils.extension_path_user(pkg, path="", create=True)
    except (ValueError, RuntimeError, TypeError):
        # Loaded as a legacy add-on or a plain module (tests, scripts): not an extension.
        path = os.path.join(bpy.utils.user_resource("CONFIG"), "duet")
        os.makedirs(path, exist_ok=True)
        return path


def managed_env_dir():
    return os.path.join(user_dir(), "runtime-env")


def env_python(env_dir):
    return os.path.join(env_dir, _BIN, _EXE)


def find_python(configured=""):
    """(path, None) or (None, one-line reason). An explicitly configured path is never second-guessed."""
    if configured:
        path = os.path.abspath(os.path.expanduser(configured))
        if os.path.isfile(path):
            return path, None
        return None, f"Runtime Python not found: {path} (Preferences > Add-ons > Duet)"
    candidates = [os.environ.get("DUET_RUNTIME_PYTHON", "")]
    try:
        candidates.append(env_python(managed_env_dir()))
    except Exception:  # no bpy (plain-Python callers)
        pass
    candidates.append(env_python(os.path.join(ROOT, ".venv")))  # a development checkout
    for c in candidates:
        if c and os.path.isfile(c):
            return c, None
    return None, ("No runtime Python found: use 'Set up runtime' or set its path in "
                  "Preferences > Add-ons > Duet")


def check_runtime(python, model=None, backend="onnx", device="auto", timeout=120):
    """Run `python -m model_runtime info`; returns (info dict, None) or (None, one-line reason)."""
    cmd = [python, "-m", "model_runtime", "info", "--backend", backend, "--device", device]
    if model:
        cmd += ["--model", model]
    try:
        cp = subprocess.run(cmd, capture_output=True, cwd=tempfile.gettempdir(),
                            env=runtime_pythonpath(), timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"Runtime did not run: {exc}"
    if cp.returncode != 0:
        err = [ln for ln in cp.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        return None, f"Runtime check failed (exit {cp.returncode}): {err[-1] if err else 'no message'}"
    try:
        info = json.loads(cp.stdout.decode("utf-8", "replace"))
    except ValueError:
        return None, "Runtime check printed something that is not JSON"
    problem = protocol_problem(info.get("protocol"))
    if problem is not None:
        return None, f"Runtime check: {problem}"
    return info, None


def describe_info(info):
    """One line for the status bar from `info` JSON (keys are read defensively: the runtime owns them)."""
    parts = [f"runtime {info.get('version', '?')}"]
    for k in ("backend", "device", "provider", "providers", "gpu", "gpu_name", "model"):
        v = info.get(k)
        if v not in (None, "", []):
            parts.append(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return "; ".join(parts)


def info_lines(info_json):
    """'key: value' lines of the last 'Check runtime' result, for the preferences box."""
    try:
        info = json.loads(info_json) if info_json else {}
    except ValueError:
        return []
    out = []
    for k, v in info.items():
        if isinstance(v, list):
            v = ", ".join(map(str, v)) or "-"
        out.append(f"{k}: {v}")
    return out


def get_client(python, model, backend, device):
    """The warm runtime for this configuration, started if needed (may raise OSError)."""
    global _client
    key = (python, model or None, backend, device)
    if _client is not None and (_client.key != key or not _client.alive):
        _client.stop()
        _client = None
    if _client is None:
        _client = RuntimeClient(python, model=model, backend=backend, device=device)
        try:
            _client.start()
        except OSError:
            _client = None
            raise
    return _client


def drop_client(client, kill=False):
    """Forget (and stop) a client that misbehaved, so the next job starts a fresh one."""
    global _client
    if client is None:
        return
    if kill:
        client.kill()
    else:
        client.stop()
    if _client is client:
        _client = None


def shutdown():
    global _client
    if _client is not None:
        _client.stop()
        _client = None


# --- managed environment ("Set up runtime") ---------------------------------------------------

RUNTIME_PACKAGES = ("numpy", "scipy", "soundfile", "onnxruntime")
TORCH_PACKAGES = ("torch==2.13.0",)  # the CPU wheel; other specs pull GBs of CUDA


def setup_commands(base_python, env_dir, backend="onnx", wheels_dir="", online=True):
    """Commands that create the managed runtime environment, or raise ValueError with the reason."""
    if not wheels_dir and not online:
        raise ValueError("Online access is off (Preferences > System > Network): "
                         "allow it, or give a folder of wheels")
    pkgs = list(RUNTIME_PACKAGES) + (list(TORCH_PACKAGES) if backend == "torch" else [])
    py = env_python(env_dir)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
    if wheels_dir:
        pip += ["--no-index", "--find-links", os.path.abspath(wheels_dir)]
    return [[base_python, "-m", "venv", env_dir], pip + pkgs]


class SetupTask:
    """Runs the set-up commands one after another; tick() polls (same timer pattern as jobs)."""

    def __init__(self, commands, log_path):
        self.commands = list(commands)
        self.log_path = log_path
        self.proc = None
        self.state = "running"
        self.message = "Setting up the runtime..."
        self._log = open(log_path, "ab")

    def tick(self):
        if self.state != "running":
            return False
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is None:
                return True
            if rc != 0:
                self._finish("failed", f"Runtime set-up failed (exit {rc}); see {self.log_path}")
                return False
            self.proc = None
        if not self.commands:
            self._finish("done", "Runtime set up; use 'Check runtime' to see it")
            return False
        cmd = self.commands.pop(0)
        try:
            self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log)
        except OSError as exc:
            self._finish("failed", f"Runtime set-up could not start: {exc}")
            return False
        return True

    def _finish(self, state, message):
        self.state, self.message = state, message
        self._log.close()

    def cancel(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        if self.state == "running":
            self._finish("cancelled", "Runtime set-up cancelled")
