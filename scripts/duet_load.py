"""Load this checkout as the extension `duet` and enable it (PyPI bpy or `blender -b --python`).

The repository root is the extension folder, whatever its own name; Blender knows the add-on by its
manifest id, so it is imported under that name and enabled through addon_utils.
"""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enable():
    import addon_utils

    if "duet" not in sys.modules:
        spec = importlib.util.spec_from_file_location("duet", os.path.join(REPO, "__init__.py"),
                                                      submodule_search_locations=[REPO])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["duet"] = mod
        spec.loader.exec_module(mod)
        mod.__time__ = os.path.getmtime(mod.__file__)  # else addon_utils tries importlib.reload
    mod = addon_utils.enable("duet", default_set=True)
    if mod is None:
        raise SystemExit("error: the Duet extension failed to enable")
    return mod


def script_args():
    """A script's own arguments: after `--` under `blender -b --python`, else all of them."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def exit_script(code):
    """Leave a headless script with `code`. The PyPI bpy 4.2 module segfaults at interpreter
    teardown once a PointerProperty with a poll callback was registered; the work is saved by then,
    so on that module leave without the teardown."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and bpy.app.version < (4, 3, 0) and not bpy.app.binary_path:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
