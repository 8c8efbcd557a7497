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
    venv, _uninstall, pip = runtime.setup_commands("/usr/bin/python3", str(tmp_path / "env"),
                                                   wheels_dir=str(tmp_path), online=False, onnx="onnxruntime")
    assert venv[1:3] == ["-m", "venv"]
    assert "--no-index" in pip and str(tmp_path) in pip and "onnxruntime" in pip
    *_, pip = runtime.setup_commands("/usr/bin/python3", str(tmp_path / "env"), backend="torch")
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


def test_protocol_check_says_plainly_which_side_is_behind(duet):
    from duet.addon.client import protocol_problem
    from duet.model_runtime.request import PROTOCOL_VERSION

    assert protocol_problem(PROTOCOL_VERSION) is None
    older = protocol_problem(None)  # a runtime from before the protocol had a number
    assert older.startswith(f"the runtime speaks protocol 0, this add-on needs {PROTOCOL_VERSION}: ")
    assert "the runtime is older than the add-on" in older
    newer = protocol_problem(PROTOCOL_VERSION + 1)
    assert f"protocol {PROTOCOL_VERSION + 1}," in newer and "the runtime is newer than the add-on" in newer
    assert "Restart Blender" in older and "Restart Blender" in newer
    for odd in ("one", True, 1.0):
        assert "not a Duet runtime" in protocol_problem(odd)
    assert all("\n" not in protocol_problem(v) for v in (None, PROTOCOL_VERSION + 1, "a\nb"))


def test_the_real_runtime_speaks_this_addons_protocol(duet, prefs):
    import time

    from duet.addon import runtime
    from duet.addon.client import RuntimeClient, protocol_problem
    from duet.model_runtime.request import PROTOCOL_VERSION

    client = RuntimeClient(prefs.runtime_python, model=prefs.model_path, device="cpu").start()
    try:
        client.send({"op": "hello"})
        end, events = time.monotonic() + 120, []
        while not any(e.get("event") in ("ready", "exit") for e in events):
            assert time.monotonic() < end, "no ready event"
            time.sleep(0.05)
            events += client.drain()
        ready = events[-1]
        assert ready["event"] == "ready" and ready["protocol"] == PROTOCOL_VERSION
        assert protocol_problem(ready["protocol"]) is None
    finally:
        client.stop()
    info, why = runtime.check_runtime(prefs.runtime_python, prefs.model_path, device="cpu")
    assert why is None and info["protocol"] == PROTOCOL_VERSION


def test_a_runtime_of_another_protocol_is_refused_before_any_request(duet, monkeypatch, tmp_path):
    """A runtime that answers `hello` with another protocol gets no predict request: the job fails
    in one line, and the runtime is dropped so the next job starts a fresh one."""
    from duet.addon import runtime
    from duet.addon.job import Job, JobState, Plan, Predict, RuntimeConfig

    class OldRuntime:  # the pipe's two ends, as RuntimeClient offers them to the job
        info, alive = None, True

        def __init__(self):
            self.sent, self.events, self.stopped = [], [], False

        def send(self, obj):
            self.sent.append(obj)
            if obj["op"] == "hello":
                self.events.append({"event": "ready", "version": "0.0.1", "model_error": None})
            return True

        def drain(self):
            out, self.events = self.events, []
            return out

        def stop(self):
            self.stopped = True

    old = OldRuntime()
    monkeypatch.setattr(runtime, "get_client", lambda *a: old)
    plan = Plan([Predict(str(tmp_path / "a.wav"))], 24.0, finish=lambda results: "written",
                work_dir=str(tmp_path))
    job = Job(plan, RuntimeConfig(python="python"))
    assert job.run(timeout=10) is JobState.FAILED
    assert job.message.startswith("Duet: the runtime speaks protocol 0, this add-on needs ")
    assert job.message.endswith("Nothing was changed.") and "\n" not in job.message
    assert [r["op"] for r in old.sent] == ["hello"] and old.stopped


def test_the_bar_only_moves_forward_through_the_stages(duet):
    """Each runtime stage reports its own 0..1; the job maps them onto one step so the bar never goes back."""
    from duet.addon.job import step_fraction

    events = [("audio", 0.0), ("audio", 0.4), ("audio", 1.0), ("features", 0.0), ("features", 1.0),
              ("network", 0.0), ("network", 0.5), ("network", 1.0)]
    shares = [step_fraction(stage, value) for stage, value in events]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == 1.0
    assert step_fraction("something new", 0.3) == 0.3
