"""'Set up runtime': which ONNX Runtime build it picks (GPU where an NVIDIA driver is present), what
the preferences say about it, and the whole set-up run end to end from a folder of wheels."""

import os
import subprocess
import sys
import time

import bpy
import pytest
from addon_helpers import load_extension


def _runtime():
    load_extension()
    from duet.addon import runtime

    return runtime


@pytest.mark.parametrize("system, machine, evidence, package", [
    ("Linux", "x86_64", ["/usr/bin/nvidia-smi"], "onnxruntime-gpu"),
    ("Linux", "x86_64", ["/proc/driver/nvidia/version"], "onnxruntime-gpu"),
    ("Windows", "AMD64", [r"C:\Windows\System32\nvcuda.dll"], "onnxruntime-gpu"),
    ("Linux", "x86_64", [], "onnxruntime"),
    ("Windows", "AMD64", [], "onnxruntime"),
    ("Darwin", "arm64", ["/usr/local/bin/nvidia-smi"], "onnxruntime"),  # no CUDA build for macOS
    ("Linux", "riscv64", ["/usr/bin/nvidia-smi"], "onnxruntime"),  # no GPU wheel there
])
def test_the_onnx_build_follows_the_nvidia_driver(system, machine, evidence, package):
    pkg, why = _runtime().onnx_package(system, machine, evidence)
    assert pkg == package and "\n" not in why
    assert why.startswith("GPU build" if package.endswith("-gpu") else "CPU build")
    if evidence and pkg.endswith("-gpu"):
        assert evidence[0] in why  # says what it found


def test_driver_evidence_is_read_from_files_only():
    runtime = _runtime()
    files = {"/proc/driver/nvidia/version", r"C:\Windows\System32\nvcuda.dll"}

    def exists(p):
        return p.replace("/", "\\") in files or p in files

    def nothing(_name):
        return None

    assert runtime.nvidia_driver_evidence("Linux", nothing, exists) == ["/proc/driver/nvidia/version"]
    win = runtime.nvidia_driver_evidence("Windows", nothing, exists, {"SystemRoot": r"C:\Windows"})
    assert len(win) == 1 and win[0].endswith("nvcuda.dll")
    assert runtime.nvidia_driver_evidence("Darwin", nothing, exists) == []
    assert runtime.nvidia_driver_evidence("Linux", lambda n: f"/usr/bin/{n}", lambda p: False) == [
        "/usr/bin/nvidia-smi"]


def test_setup_commands_install_one_build_and_remove_the_other(tmp_path):
    runtime = _runtime()
    env = str(tmp_path / "env")
    for onnx, other in (("onnxruntime-gpu", "onnxruntime"), ("onnxruntime", "onnxruntime-gpu")):
        venv, uninstall, install = runtime.setup_commands("/usr/bin/python3", env, onnx=onnx)
        assert venv == ["/usr/bin/python3", "-m", "venv", env]
        assert uninstall[-3:] == ["uninstall", "-y", other]  # before the install: they share files
        assert onnx in install and other not in install and "torch==2.13.0" not in install
    *_, install = runtime.setup_commands("/usr/bin/python3", env, backend="torch", onnx="onnxruntime")
    assert install[-1] == "torch==2.13.0"


def test_preferences_say_which_build_set_up_installs(duet, monkeypatch):
    runtime = _runtime()
    import duet.ui as ui

    class Layout:
        def __init__(self, log):
            self.log = log

        def row(self, **kw):
            return self

        column = box = row

        def prop(self, *a, **kw):
            pass

        operator = prop

        def label(self, text="", **kw):
            self.log.append(text)

    prefs = bpy.context.preferences.addons["duet"].preferences
    for found, expect in (("onnxruntime-gpu", "Set up installs onnxruntime-gpu: GPU build: NVIDIA driver found"),
                          ("onnxruntime", "Set up installs onnxruntime: CPU build: no NVIDIA driver found")):
        evidence = ["/usr/bin/nvidia-smi"] if found.endswith("-gpu") else []
        monkeypatch.setattr(runtime, "detected_onnx_package",
                            lambda e=evidence: runtime.onnx_package("Linux", "x86_64", e))
        log = []
        ui.draw_preferences(prefs, bpy.context, Layout(log))
        assert any(line.startswith(expect) for line in log), log
    prefs.backend = "torch"
    log = []
    ui.draw_preferences(prefs, bpy.context, Layout(log))
    assert any("and torch (CPU)" in line for line in log), log


# --- end to end, from a folder of wheels --------------------------------------------------------

def _pip(*args, timeout):
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def _last_line(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "no output"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """A folder with the wheels 'Set up runtime' installs on this machine (its ONNX Runtime build
    included), made with pip download from the package registry; skips in one line where the
    registry cannot be reached (CI has it)."""
    runtime = _runtime()
    probe, folder = tmp_path_factory.mktemp("probe"), tmp_path_factory.mktemp("wheels")
    try:  # a short look first, so an offline machine skips in seconds
        cp = _pip("download", "--no-deps", "--timeout", "5", "--retries", "0", "-d", str(probe), "packaging",
                  timeout=60)
        if cp.returncode == 0:
            cp = _pip("download", "--only-binary=:all:", "--timeout", "30", "--retries", "1", "-d", str(folder),
                      *runtime.setup_packages("onnx"), timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("package registry unreachable (pip download timed out): set-up test skipped")
    if cp.returncode != 0:
        pytest.skip(f"package registry unreachable (pip download: {_last_line(cp.stdout + cp.stderr)}): "
                    "set-up test skipped")
    return folder


def test_set_up_runtime_from_a_folder_of_wheels(duet, wheels, random_model, tmp_path, monkeypatch):
    """The operator as the artist runs it (wheels folder in the preferences), its timer ticked as
    Blender would, then the new environment runs `python -m model_runtime info`."""
    runtime = _runtime()
    import duet.ops as ops

    monkeypatch.setattr(runtime, "user_dir", lambda: str(tmp_path))  # never the real user folder
    prefs = bpy.context.preferences.addons["duet"].preferences
    prefs.wheels_dir, prefs.backend = str(wheels), "onnx"
    assert bpy.ops.duet.setup_runtime() == {"FINISHED"}
    task = runtime.current_setup()
    assert task is not None and task.state == "running"
    with pytest.raises(RuntimeError, match="already being set up"):
        bpy.ops.duet.setup_runtime()
    end = time.monotonic() + 240
    while ops.setup_timer() is not None:
        assert time.monotonic() < end, "set-up took over 4 minutes"
        time.sleep(0.2)
    log = (tmp_path / "setup.log").read_text(errors="replace")
    assert task.state == "done", f"{task.message}\n{log[-3000:]}"
    assert bpy.context.window_manager.duet_status == task.message
    env_dir = runtime.managed_env_dir()
    assert env_dir.startswith(str(tmp_path))
    python = runtime.env_python(env_dir)
    info, why = runtime.check_runtime(python, str(random_model), "onnx", "cpu")
    assert why is None, why
    assert os.path.realpath(os.path.dirname(info["python"])) == os.path.realpath(os.path.dirname(python))
    assert info["backend"] == "onnx" and info["provider"] == "CPUExecutionProvider"
    assert info["model"] == str(random_model)
    pkg = runtime.detected_onnx_package()[0]
    shown = subprocess.run([python, "-m", "pip", "show", pkg], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, f"{pkg} is not what the environment got"
