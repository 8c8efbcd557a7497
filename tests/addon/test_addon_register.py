"""The extension as Blender sees it: register/unregister, and the manifest + zip validating with
Blender's own extension CLI (a plain-Python script inside the bpy wheel)."""

import fnmatch
import os
import subprocess
import sys
import zipfile

import addon_utils
import bpy
import pytest
from addon_helpers import REPO


def _registered():
    return {
        "panel": hasattr(bpy.types, "DUET_PT_main"),
        "op": hasattr(bpy.types, "DUET_OT_generate"),
        "scene_prop": hasattr(bpy.types.Scene, "duet"),
        "object_prop": hasattr(bpy.types.Object, "duet_map"),
        "prefs": "duet" in bpy.context.preferences.addons,
    }


def test_register_unregister_twice_stops_the_runtime(duet, prefs):
    from duet.addon import runtime

    for _ in range(2):
        assert all(_registered().values()), _registered()
        client = runtime.get_client(prefs.runtime_python, prefs.model_path, "onnx", "cpu")
        assert client.alive
        addon_utils.disable("duet", default_set=True)
        assert not any(_registered().values()), _registered()
        assert not client.alive, "unregister must stop the runtime process"
        assert client.proc.returncode == 0, "stopped politely (shutdown), not killed"
        assert addon_utils.enable("duet", default_set=True) is not None
        prefs = bpy.context.preferences.addons["duet"].preferences
        prefs.runtime_python, prefs.model_path = client.python, client.model
    # And the module-level functions directly, twice, symmetric.
    addon_utils.disable("duet", default_set=True)
    for _ in range(2):
        duet.register()
        assert hasattr(bpy.types, "DUET_PT_main") and hasattr(bpy.types.Scene, "duet")
        duet.unregister()
        assert not hasattr(bpy.types, "DUET_PT_main") and not hasattr(bpy.types.Scene, "duet")


def ext_cli():
    path = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")
    if not os.path.isfile(path):
        pytest.skip(f"this bpy wheel has no extension CLI at {path}")
    return path


# What the extension runs, and nothing else: the add-on, the runtime's code (training is not part
# of it), the ONNX model and its card. The torch checkpoint, the demo head, the sample
# conversation, docs, tests, scripts and requirement files stay in the repository.
ZIP_ALLOWED = ("blender_manifest.toml", "__init__.py", "addon/*.py", "ops/*.py", "ui/*.py",
               "model_runtime/*.py", "model_runtime/net/*.py", "assets/duet_dualtalk.onnx",
               "assets/MODEL_CARD.md")


def test_manifest_and_zip_validate(duet, tmp_path):
    cli = ext_cli()
    r = subprocess.run([sys.executable, cli, "validate", str(REPO)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, cli, "build", "--source-dir", str(REPO), "--output-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (zpath,) = tmp_path.glob("duet-*.zip")
    r = subprocess.run([sys.executable, cli, "validate", str(zpath)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    names = zipfile.ZipFile(zpath).namelist()
    print(f"{zpath.name}: {zpath.stat().st_size:,} bytes, {len(names)} files")
    for needed in ("blender_manifest.toml", "__init__.py", "addon/writer.py", "ops/__init__.py",
                   "ui/__init__.py", "model_runtime/motion_io.py", "model_runtime/channels.py",
                   "model_runtime/__main__.py", "assets/duet_dualtalk.onnx"):
        assert needed in names, needed
    extra = [n for n in names if not any(fnmatch.fnmatchcase(n, p) and n.count("/") == p.count("/")
                                         for p in ZIP_ALLOWED)]
    assert not extra, f"the zip carries what the extension does not run: {extra}"
    # Without the checkpoint the torch backend says where it looked and what to do, in one line.
    ext = tmp_path / "installed"
    zipfile.ZipFile(zpath).extractall(ext)
    code = ("from model_runtime import model_file\n"
            "try:\n    model_file.resolve(None, '.pt')\n"
            "except model_file.NoModel as exc:\n    print(exc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=str(ext), env=dict(os.environ, PYTHONPATH=str(ext)))
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert str(ext / "assets" / "duet_dualtalk.pt") in line and "ONNX backend" in line, line


def test_addon_side_never_imports_torch(duet):
    """The bpy side reuses the runtime's numpy-only modules; torch must never come with them."""
    code = ("import sys, importlib.util as u; "
            f"s = u.spec_from_file_location('duet', {str(REPO / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(REPO)!r}]); m = u.module_from_spec(s); "
            "sys.modules['duet'] = m; s.loader.exec_module(m); "
            "import duet.addon.llf, duet.addon.generate, duet.ops, duet.ui; "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'onnxruntime', 'scipy')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
