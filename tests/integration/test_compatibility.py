"""The FiftyOne versions the plugin declares, and FiftyOne's own refusal of a
release outside them (README, "Compatibility")."""

import os
import re
import shutil
import subprocess
import sys

import yaml

from conftest import PLUGIN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIFTYONE_CLI = os.path.join(os.path.dirname(sys.executable), "fiftyone")


def declared_range():
    manifest = yaml.safe_load(open(os.path.join(REPO, "fiftyone.yml")))
    return manifest["fiftyone"]["version"]


def test_declared_range_is_the_same_everywhere_and_holds_this_fiftyone():
    from packaging.requirements import Requirement
    from packaging.version import Version
    import fiftyone.constants as foc

    declared = declared_range()
    m = re.fullmatch(r">=(\d+)\.(\d+)\.(\d+),<(\d+)", declared)
    assert m, "fiftyone.yml: expected '>=<oldest tested>,<next major>', got %r" % declared
    assert int(m.group(4)) == int(m.group(1)) + 1, "the range stops at the next major"
    requirements = [
        l.strip() for l in open(os.path.join(REPO, "requirements.txt"))
        if re.match(r"fiftyone\s*[<>=]", l)
    ]
    assert [Requirement(r).specifier for r in requirements] == [Requirement("fiftyone" + declared).specifier]
    pyproject = open(os.path.join(REPO, "pyproject.toml")).read()
    assert '"fiftyone%s"' % declared in pyproject
    assert Requirement("fiftyone" + declared).specifier.contains(foc.VERSION), (
        "FiftyOne %s is outside the declared %s" % (foc.VERSION, declared)
    )
    # the oldest declared release is the one `make test-compat` (CI) tests
    oldest = declared.split(",")[0][2:]
    assert Version(oldest) <= Version(foc.VERSION)
    makefile = open(os.path.join(REPO, "Makefile")).read()
    assert "FIFTYONE_OLDEST" in makefile and "fiftyone.yml" in makefile


def _plugin_copy(tmp_path, fiftyone_range):
    """A plugins dir holding a copy of this plugin with another declared range.

    (A copy, not links: FiftyOne refuses an entry point outside the plugin's
    directory.)"""
    plugins = tmp_path / "plugins"
    plugin = plugins / "label-noise-curation"
    plugin.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy(os.path.join(REPO, "__init__.py"), plugin / "__init__.py")
    for package in ("operators", "methods"):
        shutil.copytree(os.path.join(REPO, package), plugin / package, ignore=ignore)
    text = open(os.path.join(REPO, "fiftyone.yml")).read()
    text, n = re.subn(r'(?m)^(  version: ).*$', r'\g<1>"%s"' % fiftyone_range, text)
    assert n == 1
    (plugin / "fiftyone.yml").write_text(text)
    return str(plugins)


def _fiftyone(plugins_dir, *args, **env):
    environ = dict(os.environ, FIFTYONE_PLUGINS_DIR=plugins_dir, **env)
    return subprocess.run(
        [FIFTYONE_CLI, *args], capture_output=True, text=True, env=environ, timeout=180
    )


def _listed(out):
    return {u for u in out.stdout.split() if u.startswith(PLUGIN + "/")}


def test_out_of_range_fiftyone_refuses_the_plugin_with_its_own_message(tmp_path):
    import fiftyone.constants as foc

    excluding = ">%s,<%d" % (foc.VERSION, int(foc.VERSION.split(".")[0]) + 1)
    plugins = _plugin_copy(tmp_path, excluding)
    message = (
        "Plugin %s requires fiftyone%s but you are running %s, which is not compatible"
        % (PLUGIN, excluding, foc.VERSION)
    )

    # loading: nothing registered, FiftyOne's message, no traceback
    out = _fiftyone(plugins, "operators", "list")
    assert out.returncode == 0, out.stderr
    assert _listed(out) == set()
    assert message in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "Failed to register" not in out.stdout + out.stderr

    # FiftyOne's own requirements check says the same (and fails)
    out = _fiftyone(plugins, "plugins", "requirements", PLUGIN, "--ensure")
    assert out.returncode != 0
    assert message in out.stderr

    # FiftyOne's requirement_error_level=1 ("warn") loads it anyway
    out = _fiftyone(plugins, "operators", "list", FIFTYONE_REQUIREMENT_ERROR_LEVEL="1")
    assert out.returncode == 0, out.stderr
    assert PLUGIN + "/compute_knn_disagreement" in _listed(out)
    assert "Traceback" not in out.stdout + out.stderr


def test_in_range_copy_loads_and_requirements_check_passes(tmp_path):
    plugins = _plugin_copy(tmp_path, declared_range())
    out = _fiftyone(plugins, "operators", "list")
    assert out.returncode == 0, out.stderr
    assert PLUGIN + "/compute_knn_disagreement" in _listed(out)
    assert "not compatible" not in out.stdout + out.stderr
    out = _fiftyone(plugins, "plugins", "requirements", PLUGIN, "--ensure", "--error-level", "0")
    assert out.returncode == 0, out.stderr
    assert "not compatible" not in out.stdout + out.stderr


def test_operators_use_no_api_the_oldest_supported_fiftyone_lacks():
    """Operator code runs on every declared release: what only newer
    releases have goes through operators/compat.py (see its docstring)."""
    import glob

    from operators.compat import NEWER_ONLY

    sources = sorted(glob.glob(os.path.join(REPO, "operators", "*.py")))
    sources.append(os.path.join(REPO, "__init__.py"))
    found = []
    for path in sources:
        if os.path.basename(path) == "compat.py":
            continue
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            for pattern, why in NEWER_ONLY.items():
                if re.search(pattern, line.split("#")[0]):
                    found.append("%s:%d: %s (%s)" % (os.path.relpath(path, REPO), number, line.strip(), why))
    assert not found, (
        "FiftyOne %s (the oldest declared) lacks these; add a shim to "
        "operators/compat.py and call it instead:\n%s"
        % (declared_range().split(",")[0][2:], "\n".join(found))
    )
