"""Preferences and the runtime as the artist meets them: finding it, checking it, setting it up."""

import json
import os

import bpy
import pytest
import soundfile as sf
from addon_helpers import REPO, ROOT_CONFTEST, make_face


def test_runtime_python_found_automatically(duet, monkeypatch):
    from duet.addon import runtime

    monkeypatch.delenv("DUET_RUNTIME_PYTHON", raising=False)
    path, why = runtime.find_python("")
    assert path == os.path.join(str(REPO), ".venv", "bin", "python") and why is None
    path, why = runtime.find_python("/no/such/python")
    assert path is None and "/no/such/python" in why


def test_check_runtime_operator(duet, prefs):
    assert bpy.ops.duet.check_runtime() == {"FINISHED"}
    info = json.loads(prefs.runtime_info)
    assert info["version"] and info["backend"] == "onnx" and info["provider"] == "CPUExecutionProvider"
    assert info["model"] == prefs.model_path


def test_setup_commands_respect_online_access(duet, tmp_path):
    from duet.addon import runtime

    with pytest.raises(ValueError, match="Online access is off"):
        runtime.setup_commands("/usr/bin/python3", str(tmp_path / "env"), online=False)
    venv, pip = runtime.setup_commands("/usr/bin/python3", str(tmp_path / "env"), wheels_dir=str(tmp_path),
                                       online=False)
    assert venv[1:3] == ["-m", "venv"]
    assert "--no-index" in pip and str(tmp_path) in pip and "onnxruntime" in pip
    _, pip = runtime.setup_commands("/usr/bin/python3", str(tmp_path / "env"), backend="torch")
    assert "torch==2.13.0" in pip and "--no-index" not in pip


def test_voice_from_a_sound_strip_at_2997_fps(duet, prefs, tmp_path):
    """A voice already in the Sequencer, a 29.97 fps scene, the frame range set from the result."""
    from duet.addon import generate

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.001
    path = tmp_path / "line.wav"
    sf.write(path, ROOT_CONFTEST.speechlike(4.0, seed=9), 16000)
    if not bpy.app.build_options.audaspace:
        pytest.skip("this bpy build has no audio (Audaspace): no sound strips")
    se = scene.sequence_editor_create()
    strips = se.strips if hasattr(se, "strips") else se.sequences
    strip = strips.new_sound("line", str(path), 1, 10)
    obj = make_face()
    s = scene.duet
    s.character, s.self_strip, s.start_frame, s.set_frame_range = obj, strip.name, 10, True
    assert bpy.ops.duet.generate(wait=True) == {"FINISHED"}
    job = generate.current_job()
    assert job.plan.fps == pytest.approx(29.97002997)
    assert job.plan.steps[0].result["frames"] == 120  # ceil(4 s * 29.97)
    assert (scene.frame_start, scene.frame_end) == (10, 129)
    assert len(strips) == 1, "the strip already there is reused, not duplicated"


def test_setup_task_offline_without_wheels_fails_clearly(duet, tmp_path):
    """The real set-up commands, driven by tick(): the environment is created, then pip finds no
    packages in an empty wheels folder and the artist gets one line pointing at the log."""
    import sys
    import time

    from duet.addon import runtime

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env_dir = tmp_path / "env"
    cmds = runtime.setup_commands(sys.executable, str(env_dir), wheels_dir=str(wheels), online=False)
    task = runtime.SetupTask(cmds, str(tmp_path / "setup.log"))
    end = time.monotonic() + 120
    while task.tick():
        assert time.monotonic() < end
        time.sleep(0.05)
    assert os.path.isfile(runtime.env_python(str(env_dir)))
    assert task.state == "failed" and "setup.log" in task.message and "\n" not in task.message
    log = (tmp_path / "setup.log").read_text()
    assert "No matching distribution" in log or "Could not find" in log
