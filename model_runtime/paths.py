"""Where Duet's folders are: the one place that knows the layout (numpy-free, bpy-free).

`ROOT` is the folder that holds `model_runtime/`: the repository root in a checkout, the
extension's own folder once installed in Blender (the zip keeps the same layout). Everything
else is named relative to it here and imported from here, so nothing guesses with `parents[N]`.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SAMPLE_DIR = ASSETS / "sample"
SAMPLE_CAST_DIR = ASSETS / "sample_cast"  # the three-person sample (`make demo CAST=3`)

# Checkout only (tests, training): shared data is read in place, never copied into the repository:
# a `shared/` folder beside the checkout, or inside it where a machine mounts it; DUET_SHARED overrides both.
_SHARED_CANDIDATES = (ROOT.parent / "shared", ROOT / "shared")
SHARED = Path(os.environ.get("DUET_SHARED") or next((p for p in _SHARED_CANDIDATES if p.is_dir()),
                                                    _SHARED_CANDIDATES[0]))


def runtime_pythonpath(env=None):
    """`env` (default os.environ) with ROOT prepended to PYTHONPATH, so `python -m model_runtime` imports."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env
