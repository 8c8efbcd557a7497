"""Add-on tests: the real PyPI bpy module, the extension enabled as an add-on, the real runtime.

The extension folder is the repository root; it is imported under its manifest id `duet` (the
folder's own name may be anything) and enabled through addon_utils so its preferences exist.
The runtime runs under its own interpreter (found as in Blender: DUET_RUNTIME_PYTHON, else the
repository's .venv), so these tests also run from venvs that carry another bpy but no torch.
"""

import os
import subprocess
import sys

import pytest

try:
    import bpy
except ImportError:  # an environment without the PyPI bpy module: nothing here can run
    bpy = None
    collect_ignore_glob = ["test_*.py"]
else:
    from addon_helpers import REPO, load_extension, runtime_python

_exit_status = {}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


def pytest_unconfigure(config):
    # The PyPI bpy 4.2 module segfaults at interpreter teardown once a PointerProperty with a poll
    # callback was registered (any add-on's; minimal repro: register a PropertyGroup with
    # PointerProperty(type=Object, poll=...) and exit). Everything is reported by now: leave
    # without the teardown so the exit status is pytest's, not the crash's.
    if bpy is not None and bpy.app.version < (4, 3, 0) and "code" in _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["code"])


@pytest.fixture
def duet():
    """A factory-fresh empty scene with the extension enabled (module `duet`).

    read_factory_settings also resets the preferences, which disables every add-on that is not
    a factory one (running our unregister), so the extension is enabled again for each test.
    """
    import addon_utils

    load_extension()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mod = addon_utils.enable("duet", default_set=True)
    assert mod is not None, "the extension failed to enable"
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    yield mod
    if "duet" in bpy.context.preferences.addons:
        addon_utils.disable("duet", default_set=True)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    """Overrides tests/conftest.py's fixture only in how it runs the CLI: with the runtime's own
    Python (a bpy compatibility venv has no torch), same commands, same result."""
    py = runtime_python()
    d = tmp_path_factory.mktemp("model")
    pt, onnx = d / "random.pt", d / "random.onnx"
    from model_runtime.paths import runtime_pythonpath

    env = runtime_pythonpath()
    for args in (("init", "--out", pt, "--seed", 0), ("export", "--checkpoint", pt, "--out", onnx)):
        r = subprocess.run([py, "-m", "model_runtime", *map(str, args)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return onnx


@pytest.fixture
def prefs(duet, random_model):
    """Preferences pointing at the random model and the repository's runtime."""
    p = bpy.context.preferences.addons["duet"].preferences
    p.runtime_python = runtime_python()
    p.model_path = str(random_model)
    p.backend = "onnx"
    p.device = "CPU"
    return p


