"""Security: confined file writes, no pickle, a light plugin import.

- exports and review imports never write or delete outside the chosen
  directory, whatever the class names, file names, symlinks or a tampered
  manifest contain (run only for the export/import operators that are
  registered; skipped with a message otherwise);
- saved models are loaded with ``weights_only=True``: a pickled payload that
  would run code is refused, and no code of the plugin unpickles;
- loading the plugin the way FiftyOne does imports neither torch nor faiss
  nor (newly) sklearn.
"""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import PLUGIN, operator, run_operator
from private_mongo import REPO_ROOT


def registered(name):
    import fiftyone.operators as foo

    return foo.operator_exists("%s/%s" % (PLUGIN, name))


def require(name):
    if not registered(name):
        pytest.skip("operator %s is not registered (yet): nothing to test" % name)


def tree(root):
    """{relative path: ('dir'|'link'|sha1)} of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir",)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", hashlib.sha1(f.read()).hexdigest())
    return out


def outside(entries, out_rel):
    return {k: v for k, v in entries.items() if k != out_rel and not k.startswith(out_rel + os.sep)}


NASTY_CLASSES = ["a/b", "../up", "with space", "ünïcødé 猫"]


@pytest.fixture
def nasty_dataset(new_dataset, tmp_path):
    """Real images named with spaces/unicode/dots, classes with ``/`` and
    ``..``, clustered embeddings with 30% wrong labels (so dupes exist)."""
    import fiftyone as fo
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8))
    samples = []
    for i in range(80):
        true = i % 4
        label = (true + 1) % 4 if i % 10 < 3 else true
        name = ["..hidden %d.png", "spaced name %d.png", "ünï %d.png", "plain%d.png"][i % 4] % i
        path = src / name
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
        samples.append(
            fo.Sample(
                filepath=str(path),
                ground_truth=fo.Classification(label=NASTY_CLASSES[label]),
                embeddings=(centers[true] + 0.05 * rng.normal(size=8)).astype(np.float32),
            )
        )
    ds = new_dataset()
    ds.add_samples(samples)
    # a file outside the export folder that an attack would target
    (tmp_path / "victim.txt").write_text("do not touch")
    return ds


def _dupes(ds):
    require("compute_dupes")
    summary = run_operator("compute_dupes", ds, rounds=2, threshold=1)
    assert summary["num_flagged"] > 0, summary
    return summary


def _dir_param(name):
    names = [p.name for p in getattr(operator(name), "params", ())]
    for candidate in ("dir", "export_dir", "output_dir", "directory"):
        if candidate in names:
            return candidate
    pytest.skip("%s: no directory parameter among %s" % (name, names))


@pytest.mark.parametrize(
    "name", ["export_dupes", "export_dupes_corrected", "export_curated_dataset"]
)
def test_exports_stay_inside_their_directory(name, nasty_dataset, tmp_path):
    require(name)
    ds = nasty_dataset
    if name.startswith("export_dupes"):
        _dupes(ds)
    before = tree(tmp_path)
    out = tmp_path / "box" / "out"
    summary = run_operator(name, ds, **{_dir_param(name): str(out)})
    after = tree(tmp_path)
    rel = os.path.join("box", "out")
    new_outside = outside(after, rel)
    new_outside.pop("box", None)  # the parent folder the export created
    assert new_outside == before, "export changed files outside %s" % out
    written = [k for k in after if k.startswith(rel + os.sep)]
    assert written, summary
    for k in written:
        path = tmp_path / k
        assert os.path.realpath(path).startswith(str(out) + os.sep)
        assert after[k][0] in ("dir", "file"), "export made a symlink: %s" % k
    assert summary.get("num_exported", 1) > 0, summary


def test_dupes_review_import_and_reexport_cannot_escape(nasty_dataset, tmp_path):
    require("export_dupes")
    require("import_dupes_review")
    ds = nasty_dataset
    _dupes(ds)
    out = tmp_path / "review"
    run_operator("export_dupes", ds, dir=str(out))
    # a reviewer's folder may contain anything: a symlink to a file outside,
    # and a manifest edited to list paths outside the folder
    os.symlink(tmp_path / "victim.txt", out / "link_to_victim.png")
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        first = next(iter(manifest["files"].values()))
        manifest["files"]["../victim.txt"] = dict(first)
        manifest["files"]["../../victim.txt"] = dict(first)
        manifest["classes"]["../.."] = "evil"
        manifest_path.write_text(json.dumps(manifest))
    before = outside(tree(tmp_path), "review")
    try:
        run_operator("import_dupes_review", ds, dir=str(out))
    except Exception as e:  # refusing the tampered folder is fine
        assert "Error" in str(e)
    try:
        run_operator("export_dupes", ds, dir=str(out), overwrite=True)
    except Exception as e:
        assert "Error" in str(e)
    assert outside(tree(tmp_path), "review") == before
    assert (tmp_path / "victim.txt").read_text() == "do not touch"


# ------------------------------------------------------------- pickling ---


def _runs_module():
    from conftest import plugin_module

    return plugin_module("store.runs")


class _Payload:
    """Unpickling this would create a file (i.e. run code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_decode_state_dict_refuses_pickled_objects(tmp_path):
    import torch

    runs = _runs_module()
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    back = runs.decode_state_dict(runs.encode_state_dict(state))
    assert torch.equal(back["w"], state["w"])

    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"w": state["w"], "evil": _Payload(str(marker))}, buffer)
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    with pytest.raises(Exception) as info:
        runs.decode_state_dict(text)
    assert "weights_only" in str(info.value) or "Unpickl" in type(info.value).__name__
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_plugin_code():
    """No pickle/torch.load without weights_only/np.load(allow_pickle=True)."""
    offenders = []
    sources = [os.path.join(REPO_ROOT, "__init__.py")]
    for package in ("methods", "store", "operators"):
        for folder, _, names in os.walk(os.path.join(REPO_ROOT, package)):
            sources += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    assert len(sources) > 40, sources  # the walk found the plugin
    for path in sources:
        text = open(path, encoding="utf-8").read()
        where = os.path.relpath(path, REPO_ROOT)
        if re.search(r"\bpickle\.loads?\(|\bdill\b|\bjoblib\.load\(", text):
            offenders.append("%s: unpickles" % where)
        if re.search(r"allow_pickle\s*=\s*True", text):
            offenders.append("%s: np.load(allow_pickle=True)" % where)
        for call in re.finditer(r"torch\.load\(", text):
            depth, i = 1, call.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if "weights_only=True" not in text[call.end():i]:
                offenders.append("%s: torch.load without weights_only=True" % where)
    assert not offenders, offenders


# ------------------------------------------------------ plugin import ---

LOAD_PLUGIN = r"""
import sys
import fiftyone.operators as foo
heavy = ("torch", "torchvision", "faiss", "sklearn")
before = {m for m in heavy if m in sys.modules}
ops = [o.uri for o in foo.list_operators(builtin=False)]
after = {m for m in heavy if m in sys.modules}
print("BEFORE", sorted(before))
print("NEW", sorted(after - before))
print("OPS", " ".join(sorted(ops)))
"""


def test_loading_the_plugin_imports_no_heavy_libraries():
    done = subprocess.run(
        [sys.executable, "-c", LOAD_PLUGIN], env=os.environ.copy(),
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(l.split(" ", 1) for l in done.stdout.splitlines() if " " in l and l.split(" ", 1)[0] in ("BEFORE", "NEW", "OPS"))
    assert PLUGIN + "/compute_knn_disagreement" in lines["OPS"], done.stdout
    assert lines["NEW"] == "[]", "loading the plugin imported %s" % lines["NEW"]
    # fiftyone itself imports sklearn; torch and faiss must never be loaded
    assert "torch" not in lines["BEFORE"] and "faiss" not in lines["BEFORE"]


@pytest.mark.parametrize(
    "name", ["import_dupes_review", "apply_dupes_review", "apply_label_corrections"]
)
def test_label_changing_operators_ask_for_confirmation(name, new_dataset):
    """Like FiftyOne's destructive operators: a warning + confirm box in the
    form; an unticked box (what the App sends) refuses before any change."""
    import fiftyone as fo
    from fiftyone.operators.executor import ExecutionError

    require(name)
    ds = new_dataset()
    ds.add_samples(
        [fo.Sample(filepath="/nonexistent/%d.png" % i,
                   ground_truth=fo.Classification(label="ab"[i % 2]),
                   suggested_label=fo.Classification(label="b")) for i in range(4)]
    )
    before = [s.to_dict() for s in ds]
    with pytest.raises(ExecutionError) as info:
        run_operator(name, ds, confirm=False)
    last = str(info.value).strip().splitlines()[-1].lower()
    assert "confirm" in last or "i understand" in last, last
    ds.reload()
    assert [s.to_dict() for s in ds] == before
