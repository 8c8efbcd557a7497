"""The layout's rules, checked on the source (imports inside functions count too): layers point
one way, no private names cross a module boundary, and comments speak of this repository only."""

import ast
import re

import pytest

from model_runtime.paths import ROOT

PACKAGES = ("model_runtime", "training", "addon", "ops", "ui", "scripts", "tests")
# package -> packages it must never import (ui -> ops -> addon -> model_runtime; training beside).
FORBIDDEN = {
    "model_runtime": {"training", "addon", "ops", "ui", "bpy"},
    "addon": {"ops", "ui", "training"},
    "ops": {"ui", "training"},
    "ui": {"training"},
    "training": {"addon", "ops", "ui", "bpy"},
}


def sources(*packages):
    for pkg in packages:
        yield from sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def imports(path):
    """(top-level package, module, names) of every import in a file; relative ones resolved."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], a.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod:  # `from .. import ui` at the top: the names are the packages
                for a in node.names:
                    yield a.name, a.name, ()
                continue
            parts = mod.split(".")
            top = parts[1] if parts[0] == "duet" and len(parts) > 1 else parts[0]  # scripts load the add-on as duet
            yield top, mod, tuple(a.name for a in node.names)


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_layers_point_one_way(pkg):
    bad = [f"{p.relative_to(ROOT)}: imports {mod}" for p in sources(pkg) for top, mod, _ in imports(p)
           if top in FORBIDDEN[pkg]]
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = [f"{p.relative_to(ROOT)}: from {mod} import {n}" for p in sources(*PACKAGES)
           for _, mod, names in imports(p) for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


def test_comments_cite_nothing_a_clone_lacks():
    pattern = re.compile(r"design\.md|facts\.md|shared/docs|\bissue\s*#?\d", re.IGNORECASE)
    files = [*sources(*PACKAGES), *ROOT.glob("*.py"), *ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"),
             ROOT / "Makefile", ROOT / "blender_manifest.toml", ROOT / ".ci" / "run"]
    bad = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
           if p.name != "test_layout.py"
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The rules can fail: a model_runtime module importing training is caught."""
    (tmp_path / "model_runtime").mkdir()
    bad = tmp_path / "model_runtime" / "x.py"
    bad.write_text("from ..training import conversation\nfrom .audio import _BLOCK\n"
                   "def f():\n    from .. import ui\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    found = list(imports(bad))
    assert ("training", "training", ("conversation",)) in found
    assert ("model_runtime", "model_runtime.audio", ("_BLOCK",)) in found
    assert ("ui", "ui", ()) in found  # an import inside a function counts too
