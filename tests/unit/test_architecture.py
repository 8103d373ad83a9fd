"""The house plan (docs/architecture.md), checked on the source.

Walks the plugin's import graph (imports inside functions included; the
walker is ``scripts/import_graph.py``) and fails on an import cycle, on a
private name one file uses from another, on an import that breaks the
layering ``methods`` <- ``store`` <- ``operators`` (or FiftyOne in
``methods``), and on a module grown past the size the plan allows. The
walker itself is checked on a small tree with one of each fault, so this
test cannot pass by finding nothing.
"""

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the plan's "no file over ~600 lines that mixes jobs"
MAX_LINES = 600


def _walker():
    spec = importlib.util.spec_from_file_location(
        "import_graph", os.path.join(REPO, "scripts", "import_graph.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _findings(root):
    walker = _walker()
    edges, private = walker.import_edges(walker.plugin_modules(root))
    return walker.cycles(edges), sorted(private), walker.layer_violations(root, edges)


def test_no_cycle_no_private_name_across_files_layers_respected():
    cycles, private, layering = _findings(REPO)
    assert not cycles, "import cycles: %s" % cycles
    assert not private, "private names used across files: %s" % private
    assert not layering, "imports against the layering: %s" % layering


def test_the_walker_finds_each_kind_of_fault(tmp_path):
    files = {
        "methods/__init__.py": "",
        "methods/a.py": "import fiftyone as fo\n",
        "methods/b.py": "from . import c\n",
        "methods/c.py": "def f():\n    from .b import g\n",
        "store/__init__.py": "",
        "store/x.py": "from ..operators.y import Z\n",
        "store/w.py": "from . import x as lnx\n\nv = lnx._hidden\n",
        "operators/__init__.py": "",
        "operators/y.py": "from ..store.x import _secret\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    cycles, private, layering = _findings(str(tmp_path))
    assert ["methods.b", "methods.c"] in cycles
    assert ["operators.y", "store.x"] in cycles
    assert ("operators.y", "store.x", "_secret") in private
    assert ("store.w", "store.x", "_hidden") in private
    assert ("store.x", "operators.y") in layering
    assert ("methods.a", "fiftyone") in layering


@pytest.mark.parametrize("package", ["methods", "store", "operators"])
def test_no_module_past_the_planned_size(package):
    too_long = []
    for folder, _, names in os.walk(os.path.join(REPO, package)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    n = sum(1 for _ in f)
                if n > MAX_LINES:
                    too_long.append("%s (%d lines)" % (os.path.relpath(path, REPO), n))
    assert not too_long, "split by job: %s" % too_long


def test_every_operator_package_folder_is_a_role():
    """operators/ holds the base and forms, and folders by role."""
    folders = sorted(
        d for d in os.listdir(os.path.join(REPO, "operators"))
        if os.path.isdir(os.path.join(REPO, "operators", d)) and not d.startswith("__")
    )
    assert folders == ["curation", "detectors", "panel"]
