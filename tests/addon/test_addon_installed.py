"""The built zip installed as a real extension (bl_ext.user_default.duet) in a fresh bpy process
with its own user folder: install, enable, generate through the runtime, disable."""

import json
import subprocess
import sys

from addon_helpers import REPO, runtime_python
from test_addon_register import ext_cli

SCRIPT = r'''
import json, os, sys
import bpy, numpy as np, soundfile as sf
zip_path, py, model, tmp = sys.argv[1:5]
out = {}
r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
out["install"] = sorted(r)
name = "bl_ext.user_default.duet"
out["enabled"] = name in bpy.context.preferences.addons
prefs = bpy.context.preferences.addons[name].preferences
prefs.runtime_python, prefs.model_path, prefs.device = py, model, "CPU"
from bl_ext.user_default.duet.addon import generate, runtime
from bl_ext.user_default.duet.model_runtime import paths
out["user_dir"] = runtime.user_dir()
out["ext_dir"] = str(paths.ROOT)
mesh = bpy.data.meshes.new("Face")
mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1)], [], [(0, 1, 2)])
obj = bpy.data.objects.new("Face", mesh)
bpy.context.scene.collection.objects.link(obj)
obj.shape_key_add(name="Basis")
for n in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight"):
    obj.shape_key_add(name=n)
t = np.arange(32000) / 16000.0
sf.write(os.path.join(tmp, "a.wav"), (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(8 * t) > 0)).astype("f4"), 16000)
s = bpy.context.scene.duet
s.character, s.self_audio = obj, os.path.join(tmp, "a.wav")
out["generate"] = sorted(bpy.ops.duet.generate(wait=True))
out["message"] = generate.current_job().message
client = runtime._client
bpy.ops.preferences.addon_disable(module=name)
out["runtime_stopped"] = client is not None and not client.alive
out["disabled"] = name not in bpy.context.preferences.addons
print("RESULT " + json.dumps(out))
sys.stdout.flush()
os._exit(0)  # the PyPI bpy 4.2 module can crash at teardown (see conftest)
'''


def test_zip_installs_and_generates_as_an_extension(duet, random_model, tmp_path):
    import os

    cli = ext_cli()
    r = subprocess.run([sys.executable, cli, "build", "--source-dir", str(REPO), "--output-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (zpath,) = tmp_path.glob("duet-*.zip")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(zpath), runtime_python(), str(random_model),
                        str(tmp_path)], capture_output=True, text=True, timeout=300, env=env,
                       cwd=str(tmp_path))
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(line[len("RESULT "):])
    assert out["install"] == ["FINISHED"] and out["enabled"]
    assert out["ext_dir"].startswith(str(tmp_path / "user")) and out["user_dir"].startswith(str(tmp_path / "user"))
    assert out["generate"] == ["FINISHED"], out["message"]
    assert "Face: 3 channels x 48 frames" in out["message"]  # 2 s at 24 fps
    assert out["runtime_stopped"] and out["disabled"]
