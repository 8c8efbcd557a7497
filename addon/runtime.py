"""Finding, checking, setting up and keeping the runtime process (bpy only where noted).

One warm runtime is kept between generations (its start-up costs seconds: imports, model load);
it is restarted when the preferences that define it change, and stopped on unregister.
"""

import functools
import json
import os
import platform
import shutil
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

RUNTIME_PACKAGES = ("numpy", "scipy", "soundfile")
ONNX_CPU, ONNX_GPU = "onnxruntime", "onnxruntime-gpu"  # one or the other: both in one env break it
TORCH_PACKAGES = ("torch==2.13.0",)  # the CPU wheel; other specs pull GBs of CUDA
# Where onnxruntime-gpu publishes wheels (platform.system(), platform.machine()).
_GPU_BUILDS = {("Linux", "x86_64"), ("Windows", "AMD64"), ("Windows", "x86_64")}


def nvidia_driver_evidence(system=None, which=shutil.which, exists=os.path.exists, environ=os.environ):
    """What shows an NVIDIA driver is installed: a list of the paths found (empty: none).

    File checks only: nothing is loaded into Blender's process and nothing is run, so preferences can
    ask while they draw. The callables are parameters so tests can play any machine.
    """
    system = system or platform.system()
    found = [p for p in [which("nvidia-smi")] if p]
    if system == "Linux":
        candidates = ["/proc/driver/nvidia/version", "/usr/lib/wsl/lib/libcuda.so.1"]
        candidates += [f"{d}/libcuda.so.1" for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")]
    elif system == "Windows":
        candidates = [os.path.join(environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll")]
    else:  # macOS: ONNX Runtime has no CUDA build there, so nothing to look for
        candidates = []
    return found + [p for p in candidates if exists(p)]


def onnx_package(system, machine, evidence):
    """(package, why): the GPU build of ONNX Runtime where an NVIDIA driver is present and a GPU build
    exists for the platform, else the CPU build. Pure: the caller says what it found."""
    if system == "Darwin":
        return ONNX_CPU, "CPU build: ONNX Runtime has no CUDA build for macOS"
    if not evidence:
        return ONNX_CPU, "CPU build: no NVIDIA driver found"
    if (system, machine) not in _GPU_BUILDS:
        return ONNX_CPU, f"CPU build: no onnxruntime-gpu build for {system} {machine}"
    return ONNX_GPU, f"GPU build: NVIDIA driver found ({evidence[0]})"


@functools.cache
def detected_onnx_package():
    """onnx_package() for this machine, probed once per session."""
    return onnx_package(platform.system(), platform.machine(), nvidia_driver_evidence())


def setup_packages(backend="onnx", onnx=None):
    """What 'Set up runtime' installs; `onnx`: the ONNX Runtime package (None: the one for this machine)."""
    onnx = onnx or detected_onnx_package()[0]
    return list(RUNTIME_PACKAGES) + [onnx] + (list(TORCH_PACKAGES) if backend == "torch" else [])


def setup_summary(backend="onnx"):
    """One line for the preferences: what 'Set up runtime' would install here, and why."""
    pkg, why = detected_onnx_package()
    torch = " and torch (CPU)" if backend == "torch" else ""
    return f"Set up installs {pkg}{torch}: {why}"


def setup_commands(base_python, env_dir, backend="onnx", wheels_dir="", online=True, onnx=None):
    """Commands that create the managed runtime environment, or raise ValueError with the reason."""
    if not wheels_dir and not online:
        raise ValueError("Online access is off (Preferences > System > Network): "
                         "allow it, or give a folder of wheels")
    pkgs = setup_packages(backend, onnx)
    other = ONNX_CPU if ONNX_GPU in pkgs else ONNX_GPU
    py = env_python(env_dir)
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    install = pip + ["install"]
    if wheels_dir:
        install += ["--no-index", "--find-links", os.path.abspath(wheels_dir)]
    # The CPU and GPU builds share the `onnxruntime` module: installed over each other (a machine that
    # gained a GPU, an environment copied over), the files of one break the other.
    return [[base_python, "-m", "venv", env_dir], pip + ["uninstall", "-y", other], install + pkgs]


_setup = None  # the one set-up at a time


def start_setup(commands, log_path):
    """Start the set-up task (ValueError while one runs); the caller polls its tick() from a timer."""
    global _setup
    if _setup is not None and _setup.state == "running":
        raise ValueError("The runtime is already being set up; wait for it to finish")
    shutdown()  # the warm runtime may run from the environment about to change
    _setup = SetupTask(commands, log_path)
    return _setup


def current_setup():
    return _setup


def cancel_setup():
    if _setup is not None:
        _setup.cancel()


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
