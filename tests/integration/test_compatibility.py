"""The FiftyOne versions the plugin declares, and FiftyOne's own refusal of a
release outside them (README, "Compatibility")."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
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


#: what a plugin install holds (a GitHub archive has more; FiftyOne copies
#: the folder of fiftyone.yml as a whole)
PLUGIN_FILES = ("__init__.py", "fiftyone.yml", "requirements.txt", "operators", "store", "methods", "js")


def _copy_plugin(dest):
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PLUGIN_FILES:
        source = os.path.join(REPO, name)
        if os.path.isdir(source):
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy(source, dest / name)


def _plugin_copy(tmp_path, fiftyone_range, layout="@label-noise/curation"):
    """A plugins dir holding a copy of this plugin with another declared
    range, at ``layout`` inside it (nested as ``fiftyone plugins download``
    installs it by default).

    (A copy, not links: FiftyOne refuses an entry point outside the plugin's
    directory.)"""
    plugins = tmp_path / "plugins"
    plugin = plugins.joinpath(*layout.split("/"))
    _copy_plugin(plugin)
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
    """Plugin code (the data layer and the operators) runs on every declared
    release: what only newer releases have goes through operators/compat.py
    (see its docstring)."""
    import glob

    from conftest import plugin_module

    NEWER_ONLY = plugin_module("operators.compat").NEWER_ONLY

    sources = sorted(
        glob.glob(os.path.join(REPO, "operators", "**", "*.py"), recursive=True)
        + glob.glob(os.path.join(REPO, "store", "*.py"))
    )
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


def _manifest_names():
    manifest = yaml.safe_load(open(os.path.join(REPO, "fiftyone.yml")))
    return set(manifest["operators"]) | set(manifest.get("panels") or [])


def _listed_names(plugins_dir):
    """This plugin's operators and panels that ``fiftyone operators list``
    shows for ``plugins_dir`` (unlisted ones, i.e. the panel, included)."""
    out = _fiftyone(plugins_dir, "operators", "list", "--include-unlisted")
    if out.returncode == 2 and "--include-unlisted" in out.stderr:
        # FiftyOne 1.10 has no such flag: its list always includes unlisted
        out = _fiftyone(plugins_dir, "operators", "list")
    assert out.returncode == 0, out.stderr
    assert "Failed to register" not in out.stdout + out.stderr, out.stdout + out.stderr
    return {u.split("/")[-1] for u in _listed(out)}


def _serve(directory):
    """A loopback HTTP server for the files of ``directory`` (in a thread)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


#: run with FIFTYONE_PLUGINS_DIR = the installed plugin's plugins dir: which
#: operators registered (and the loading errors), where their code came from,
#: and the kNN baseline on two blobs with one flipped label in each
KNN_CHECK = """
import inspect, json
import numpy as np
import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.plugins.context as fopc

PLUGIN = %r
errors = [e for p in fopc.build_plugin_contexts() if p.name == PLUGIN for e in p.errors]
names = sorted(op.uri.split("/")[-1] for op in foo.list_operators(enabled=True)
               if op.plugin_name == PLUGIN)
knn = foo.get_operator(PLUGIN + "/compute_knn_disagreement")
rng = np.random.default_rng(0)
y = np.repeat([0, 1], 20)
x = 3 * np.eye(4)[y] + 0.3 * rng.normal(size=(40, 4))
noisy = y.copy()
noisy[[0, 20]] = 1 - noisy[[0, 20]]
ds = fo.Dataset()
ds.add_samples([
    fo.Sample(filepath="/nonexistent/%%d.png" %% i, embeddings=x[i],
              ground_truth=fo.Classification(label="ab"[noisy[i]]))
    for i in range(40)
])
summary = knn(ds, k=5)
scores = ds.values("knn_disagreement")
ds.delete()
print(json.dumps({"errors": errors, "registered": names, "summary": summary,
                  "scores": scores, "module_file": inspect.getfile(type(knn))}))
""" % PLUGIN


def test_fiftyone_plugins_download_installs_nested_and_every_operator_runs(tmp_path):
    """The README's install route, as a new user takes it: ``fiftyone plugins
    download <archive url>`` (a GitHub-like archive served on the loopback
    interface) puts the plugin at ``<plugins_dir>/@label-noise/curation``;
    FiftyOne lists it and its requirements, registers every operator of
    fiftyone.yml from that copy, and the kNN baseline runs. On FiftyOne
    1.10-1.13 this layout names the module ``@label-noise.curation``
    (``__init__._ensure_parent_packages``)."""
    source = tmp_path / "archive"
    _copy_plugin(source / "fiftyone-label-noise-main")
    (tmp_path / "www").mkdir()
    shutil.make_archive(str(tmp_path / "www" / "fiftyone-label-noise-main"), "zip", root_dir=source)
    plugins = str(tmp_path / "plugins")
    server, url = _serve(tmp_path / "www")
    try:
        out = _fiftyone(plugins, "plugins", "download", url + "/fiftyone-label-noise-main.zip")
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stdout + out.stderr
    installed = tmp_path / "plugins" / "@label-noise" / "curation"
    assert (installed / "fiftyone.yml").is_file(), os.listdir(plugins)

    out = _fiftyone(plugins, "plugins", "list")
    assert out.returncode == 0, out.stderr
    assert PLUGIN in out.stdout
    out = _fiftyone(plugins, "plugins", "requirements", PLUGIN)
    assert out.returncode == 0, out.stderr
    wanted = [l.strip() for l in open(os.path.join(REPO, "requirements.txt"))
              if l.strip() and not l.startswith("#")]
    assert all(w in out.stdout for w in wanted), out.stdout

    out = subprocess.run(
        [sys.executable, "-c", KNN_CHECK], capture_output=True, text=True,
        env=dict(os.environ, FIFTYONE_PLUGINS_DIR=plugins), timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    check = json.loads(out.stdout.strip().splitlines()[-1])
    assert check["errors"] == []
    assert set(check["registered"]) == _manifest_names()
    assert check["module_file"].startswith(str(installed) + os.sep)
    assert check["summary"]["num_samples"] == 40
    scores = np.array(check["scores"])
    assert scores[[0, 20]].min() == 1.0  # the flipped labels: every neighbour disagrees
    assert np.delete(scores, [0, 20]).max() < 0.21  # float32 scores


@pytest.mark.parametrize("layout", ["label-noise/curation", "label-noise-curation"])
def test_org_name_copy_and_flat_link_register_every_operator(tmp_path, layout):
    """``org/name`` without the ``@`` (a copy), and a flat link to the
    checkout (the from-a-checkout route): every operator and the panel."""
    if "/" in layout:
        plugins = _plugin_copy(tmp_path, declared_range(), layout=layout)
    else:
        plugins = str(tmp_path / "plugins")
        os.makedirs(plugins)
        os.symlink(REPO, os.path.join(plugins, layout))
    assert _listed_names(plugins) == _manifest_names()
