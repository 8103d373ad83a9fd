"""Bad input matrix: every detector operator x every kind of bad input.

Each case asserts either a clear error (an ``InputError``/``ValueError``
whose message names the field or the fix) raised before anything is written
-- the dataset (all sample documents, tags, schema, run records, run locks)
is compared before and after with :func:`snapshot` -- or the documented
behaviour (e.g. unlabeled samples skipped and counted), in which case the
user's existing fields must be untouched.

The detectors are discovered from the plugin's registered operators (every
subclass of ``DetectorOperator``), so a newly added detector is covered
automatically; :data:`SMALL_PARAMS` keeps each one fast on tiny data.
"""

import re

import numpy as np
import pytest

from conftest import PLUGIN, operator, run_operator
from synthetic import insert_blob_samples

# Parameters that keep each detector fast on ~120 samples. Only the names an
# operator declares are passed, so a renamed parameter is ignored, not fatal.
SMALL_PARAMS = {
    "compute_knn_disagreement": {"k": 5},
    "compute_training_value": {
        "episodes": 2,
        "mc_epochs": 1,
        "train_per_class": 20,
        "val_per_class": 5,
        "min_val_per_class": 2,
        "regressor_epochs": 5,
        "regressor_patience": 2,
        "num_threads": 1,
    },
    "compute_cleannet_similarity": {"num_ref": 4, "n_steps": 20, "val_interval": 10},
    "compute_dupes": {"rounds": 2, "threshold": 2},
    "compute_corrected_labels": {"samples_per_class": 20, "num_prototypes": 2},
    "compute_scan_clusters": {
        "k": 5,
        "num_heads": 1,
        "epochs": 2,
        "self_label": False,
        "hidden_dim": 16,
    },
    "compute_noise_score": {},
}

# Even smaller settings for the 1,000-class case (2,000 samples).
THOUSAND_CLASS_PARAMS = {
    "compute_dupes": {"rounds": 1, "threshold": 1},
    "compute_scan_clusters": {"num_clusters": 10},
}

# Operators that combine other detectors' fields: what to run first.
PREREQUISITES = {
    "compute_noise_score": [("compute_knn_disagreement", {"k": 5})],
    "compute_label_issue_types": [
        ("compute_label_quality", {"k": 5}), ("compute_noise_score", {}),
    ],
}

# Detectors for which labels are optional (SCAN clusters unlabeled data):
# a missing label field or unlabeled samples give an unlabeled run.
LABELS_OPTIONAL = {"compute_scan_clusters"}

# Operators that need human-verified samples may refuse a "works" case with
# their own clear message about verified/validated samples (allowed by #11).
REFUSAL_OK = re.compile(r"verif|validat", re.I)


def _detector_names():
    import fiftyone.operators as foo

    names = []
    for op in foo.list_operators(enabled=True, builtin=False):
        if not op.uri.startswith(PLUGIN + "/"):
            continue
        if "DetectorOperator" in [c.__name__ for c in type(op).__mro__]:
            names.append(op.name)
    return sorted(names)


DETECTORS = _detector_names()


def test_detectors_are_discovered():
    assert "compute_knn_disagreement" in DETECTORS, DETECTORS


# --------------------------------------------------------------- helpers ---


def snapshot(dataset):
    """Everything a run could change: raw sample (and frame) documents with
    tags, the field schema, run records and results, and run locks."""
    import fiftyone.core.odm as foodm

    dataset.reload()
    docs = list(dataset._sample_collection.find({}, sort=[("_id", 1)]))
    frames = []
    if dataset._frame_collection_name:
        frames = list(dataset._frame_collection.find({}, sort=[("_id", 1)]))
    conn = foodm.get_db_conn()
    dataset_doc = conn.datasets.find_one({"name": dataset.name})
    dataset_doc.pop("last_loaded_at", None)
    runs = {}
    for key in dataset.list_runs():
        info = dataset.get_run_info(key).serialize()
        results = dataset.load_run_results(key, cache=False)
        runs[key] = (info, None if results is None else results.serialize())
    locks = list(
        conn["label_noise_run_locks"].find(
            {"_id": {"$regex": "^%s:" % dataset._doc.id}}
        )
    )
    return {
        "samples": docs,
        "frames": frames,
        "dataset": dataset_doc,
        "runs": runs,
        "locks": locks,
        "num_samples": len(docs),
    }


def assert_unchanged(dataset, before):
    after = snapshot(dataset)
    for key in before:
        assert after[key] == before[key], "dataset changed: %s differ" % key


def assert_user_data_kept(dataset, before):
    """After a successful run: every pre-existing field of every sample holds
    exactly what it held before (only new fields may appear)."""
    after = snapshot(dataset)
    assert after["num_samples"] == before["num_samples"]
    for old, new in zip(before["samples"], after["samples"]):
        for key, value in old.items():
            if key == "last_modified_at":
                continue
            assert new.get(key) == value, "sample %s field %s changed" % (old["_id"], key)
    return after


def small_params(name, **overrides):
    declared = {p.name for p in operator(name).params}
    params = {k: v for k, v in SMALL_PARAMS.get(name, {}).items() if k in declared}
    params.update(overrides)
    return params


def prepare(name, dataset):
    """Runs the prerequisites of ``name``; False if one of them refused the
    dataset (the case under test may be one it rejects too)."""
    ok = True
    for prereq, params in PREREQUISITES.get(name, ()):
        try:
            run_operator(prereq, dataset, **params)
        except Exception:
            ok = False
    return ok


#: the ``module.ExceptionClass`` that starts an error line. The plugin's
#: module name is FiftyOne's choice: the plugin folder's path on FiftyOne 1.10
#: (``@label-noise.curation.operators.data.InputError`` as installed by
#: ``fiftyone plugins download``), a name derived from the plugin's name on 1.14+
ERROR_CLASS = r"^[@\w.-]*"


def error_line(exc):
    """The ``ExceptionClass: message`` line of an operator's traceback."""
    lines = [l for l in str(exc).strip().splitlines() if l.strip()]
    for line in reversed(lines):
        if re.match(ERROR_CLASS + r"(Error|Exception)\b", line):
            return line
    return lines[-1]


def expect_clear_error(name, dataset, mentions, target=None, **params):
    """Runs ``name``; asserts an InputError/ValueError naming one of
    ``mentions`` and that the dataset is unchanged."""
    from fiftyone.operators.executor import ExecutionError

    if not prepare(name, dataset):
        # nothing to combine: the operator must say that clearly instead
        mentions = list(mentions) + ["detector"]
    before = snapshot(dataset)
    with pytest.raises(ExecutionError) as info:
        run_operator(name, dataset if target is None else target, **small_params(name, **params))
    line = error_line(info.value)
    assert re.match(ERROR_CLASS + r"(InputError|ValueError)\b", line), line
    assert any(m.lower() in line.lower() for m in mentions), (mentions, line)
    assert_unchanged(dataset, before)
    return line


def expect_works(name, dataset, target=None, allow_error=(), **params):
    """Runs ``name`` and expects success (returns the summary), or a clear
    InputError that mentions one of ``allow_error`` or verified samples
    (returns None; the dataset must then be unchanged)."""
    from fiftyone.operators.executor import ExecutionError

    prepare(name, dataset)
    before = snapshot(dataset)
    try:
        summary = run_operator(
            name, dataset if target is None else target, **small_params(name, **params)
        )
    except ExecutionError as e:
        line = error_line(e)
        ok = re.match(ERROR_CLASS + r"(InputError|ValueError)\b", line) and (
            REFUSAL_OK.search(line) or any(m.lower() in line.lower() for m in allow_error)
        )
        if not ok:
            raise
        assert_unchanged(dataset, before)
        return None
    assert_user_data_kept(dataset, before)
    for field_name in summary["fields"]:
        assert dataset.has_sample_field(field_name), field_name
    return summary


def expect_clear_error_unless_labels_optional(name, dataset, mentions, **params):
    """For label problems: a clear error, except for detectors that also run
    without labels (:data:`LABELS_OPTIONAL`), which must then succeed without
    touching the user's data and process every sample."""
    if name not in LABELS_OPTIONAL:
        return expect_clear_error(name, dataset, mentions, **params)
    summary = expect_works(name, dataset, **params)
    assert summary is not None
    assert summary["num_samples"] == len(dataset)
    assert dataset.count(main_field(name, summary)) == len(dataset)


def image_file(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.getbasetemp() / "tiny.png"
    if not path.exists():
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)
    return str(path)


@pytest.fixture
def make(new_dataset, tmp_path_factory):
    """``make(n=120, num_classes=4, dim=16, class_names=None)``: a blob
    dataset with ``ground_truth``/``clean``/``embeddings``/``is_noisy``, half
    of it verified (``label_verified`` bool field and ``validated`` tag on the
    verified-correct samples), as the verification-based detectors expect."""
    image = image_file(tmp_path_factory)

    def _make(n=120, num_classes=4, dim=16, class_names=None, seed=0):
        ds = new_dataset()
        insert_blob_samples(
            ds, n, dim=dim, num_classes=num_classes, seed=seed,
            filepath=image, class_names=class_names, batch_size=5000,
        )
        ids, noisy = ds.values(["id", "is_noisy"])
        verified = {i: not z for k, (i, z) in enumerate(zip(ids, noisy)) if k % 2 == 0}
        ds.set_values("label_verified", verified, key_field="id")
        ds.select([i for i, ok in verified.items() if ok]).tag_samples("validated")
        return ds

    return _make


def main_field(name, summary):
    """The operator's main output field (set on every processed sample)."""
    field_name = operator(name).output_field
    assert field_name in summary["fields"], (field_name, summary["fields"])
    return field_name


def needs_embeddings(name):
    return getattr(operator(name), "needs_embeddings", True)


def skip_without_embeddings(name):
    if not needs_embeddings(name):
        pytest.skip("%s does not read embeddings" % name)


def set_field(ds, field_name, values_by_id):
    ds.set_values(field_name, values_by_id, key_field="id", validate=False)


# ---------------------------------------------------------- label fields ---


@pytest.mark.parametrize("name", DETECTORS)
def test_missing_label_field(name, make):
    ds = make()
    expect_clear_error_unless_labels_optional(name, ds, ["'labels'"], label_field="labels")


@pytest.mark.parametrize("name", DETECTORS)
def test_misspelled_label_field_names_the_alternatives(name, make):
    ds = make()
    line = expect_clear_error_unless_labels_optional(
        name, ds, ["ground_truht"], label_field="ground_truht"
    )
    if line is not None:
        assert "ground_truth" in line.replace("ground_truht", ""), line


@pytest.mark.parametrize("name", DETECTORS)
def test_label_field_not_a_classification(name, make):
    ds = make()
    ids, labels = ds.values(["id", "ground_truth.label"])
    ds.set_values("label_str", dict(zip(ids, labels)), key_field="id")
    expect_clear_error(name, ds, ["label_str"], label_field="label_str")


@pytest.mark.parametrize("kind", ["classifications", "detections"])
@pytest.mark.parametrize("name", DETECTORS)
def test_multilabel_and_detections_not_supported_yet(name, kind, make):
    import fiftyone as fo

    ds = make(n=40)
    ids, labels = ds.values(["id", "ground_truth.label"])
    if kind == "classifications":
        values = [
            fo.Classifications(classifications=[fo.Classification(label=l)]) for l in labels
        ]
    else:
        values = [
            fo.Detections(detections=[fo.Detection(label=l, bounding_box=[0.1, 0.1, 0.5, 0.5])])
            for l in labels
        ]
    ds.set_values(kind, dict(zip(ids, values)), key_field="id")
    line = expect_clear_error(name, ds, ["supported yet", "not supported"], label_field=kind)
    assert kind in line, line


@pytest.mark.parametrize("name", DETECTORS)
def test_samples_without_label_are_skipped_and_counted(name, make):
    ds = make()
    ids = ds.values("id")
    unlabeled = ids[1:10:2]  # 5 samples
    set_field(ds, "ground_truth", {i: None for i in unlabeled})
    summary = expect_works(name, ds)
    if summary is None:
        return
    if name in LABELS_OPTIONAL:  # unlabeled samples are clustered too
        assert summary["num_samples"] == len(ds)
        assert ds.count(main_field(name, summary)) == len(ds)
        return
    assert summary["num_samples"] == len(ds) - 5
    info = ds.get_run_info(summary["run_key"]).config
    reported = dict(summary.get("skipped") or {})
    reported.update(getattr(info, "skipped", None) or {})
    assert 5 in reported.values(), (
        "%s must report the 5 unlabeled samples it skipped (summary/run "
        "config 'skipped'), got %s" % (name, reported)
    )
    for field_name in summary["fields"]:
        values = dict(zip(ids, ds.values(field_name)))
        assert all(values[i] is None for i in unlabeled), field_name


@pytest.mark.parametrize("name", DETECTORS)
def test_all_samples_without_label(name, make):
    ds = make(n=20)
    set_field(ds, "ground_truth", {i: None for i in ds.values("id")})
    expect_clear_error_unless_labels_optional(name, ds, ["ground_truth"])


# ------------------------------------------------------------ embeddings ---


@pytest.mark.parametrize("name", DETECTORS)
def test_missing_embeddings_field(name, make):
    skip_without_embeddings(name)
    ds = make()
    expect_clear_error(name, ds, ["'clip_embeddings'"], embeddings_field="clip_embeddings")


@pytest.mark.parametrize("name", DETECTORS)
def test_some_samples_without_embeddings(name, make):
    skip_without_embeddings(name)
    ds = make()
    set_field(ds, "embeddings", {i: None for i in ds.values("id")[:3]})
    line = expect_clear_error(name, ds, ["embeddings"])
    assert "compute" in line.lower() or "exclude" in line.lower(), line


@pytest.mark.parametrize("bad", ["nan", "inf", "ragged"])
@pytest.mark.parametrize("name", DETECTORS)
def test_nan_inf_ragged_embeddings(name, bad, make):
    skip_without_embeddings(name)
    ds = make()
    sid = ds.values("id")[7]
    vector = {"nan": np.full(16, np.nan), "inf": np.full(16, np.inf), "ragged": np.ones(8)}[bad]
    ds.set_values("embeddings", {sid: vector.astype(np.float32)}, key_field="id")
    line = expect_clear_error(
        name, ds, {"nan": ["NaN"], "inf": ["inf"], "ragged": ["length", "dimension"]}[bad]
    )
    assert sid in line, "the message should name the sample: " + line


@pytest.mark.parametrize("name", DETECTORS)
def test_embeddings_of_other_dimension_than_saved_model(name, make):
    skip_without_embeddings(name)
    if "score_new_samples" not in {p.name for p in operator(name).params}:
        pytest.skip("%s has no saved model to score new samples with" % name)
    ds = make()
    first = expect_works(name, ds, run_key="saved")
    if first is None:
        pytest.skip("%s refused the tiny dataset (clear error checked above)" % name)
    ids = ds.values("id")
    rng = np.random.default_rng(1)
    ds.set_values(
        "emb8", {i: rng.normal(size=8).astype(np.float32) for i in ids}, key_field="id"
    )
    expect_clear_error(
        name, ds, ["dimension", "emb8", "dim"],
        run_key="saved", embeddings_field="emb8", score_new_samples=True,
    )


# --------------------------------------------------------------- classes ---


@pytest.mark.parametrize("name", DETECTORS)
def test_single_class(name, make):
    import fiftyone as fo

    ds = make(n=40)
    ids = ds.values("id")
    ds.set_values(
        "ground_truth", {i: fo.Classification(label="cat") for i in ids}, key_field="id"
    )
    expect_clear_error_unless_labels_optional(name, ds, ["class"])


@pytest.mark.parametrize("name", DETECTORS)
def test_class_with_one_sample(name, make):
    import fiftyone as fo

    ds = make()
    sid = ds.values("id")[3]
    ds.set_values("ground_truth", {sid: fo.Classification(label="lonely")}, key_field="id")
    summary = expect_works(name, ds, allow_error=["lonely"])
    if summary is not None:
        assert summary["num_samples"] == len(ds)


@pytest.mark.parametrize("name", DETECTORS)
def test_empty_view(name, make):
    ds = make(n=20)
    expect_clear_error(name, ds, ["empty"], target=ds.limit(0))


@pytest.mark.parametrize("name", DETECTORS)
def test_thousand_classes(name, make):
    ds = make(n=2000, num_classes=1000)
    params = THOUSAND_CLASS_PARAMS.get(name, {})
    summary = expect_works(name, ds, allow_error=["class"], **params)
    if summary is not None:
        assert summary["num_samples"] == len(ds)
        assert ds.count(main_field(name, summary)) == len(ds)


@pytest.mark.parametrize("name", DETECTORS)
def test_class_names_with_slashes_dots_spaces_unicode(name, make):
    names = ["a/b", "../up", "with space", "ünïcødé 猫"]
    ds = make(class_names=names)
    summary = expect_works(name, ds)
    if summary is None:
        return
    assert summary["num_samples"] == len(ds)
    assert ds.count(main_field(name, summary)) == len(ds)
    for field_name in summary["fields"]:
        values = [v for v in ds.values(field_name) if v is not None]
        labels = {getattr(v, "label", None) for v in values} - {None}
        assert labels <= set(names), (field_name, labels)


# ----------------------------------------------------------------- media ---


def _video_dataset(new_dataset):
    import fiftyone as fo

    ds = new_dataset()
    rng = np.random.default_rng(0)
    ds.add_samples(
        [
            fo.Sample(
                filepath="/nonexistent/clip_%d.mp4" % i,
                ground_truth=fo.Classification(label="ab"[i % 2]),
                embeddings=rng.normal(size=16).astype(np.float32),
            )
            for i in range(6)
        ]
    )
    assert ds.media_type == "video"
    return ds


def _group_dataset(new_dataset):
    import fiftyone as fo

    ds = new_dataset()
    ds.add_group_field("group", default="left")
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        group = fo.Group()
        for side in ("left", "right"):
            samples.append(
                fo.Sample(
                    filepath="/nonexistent/%s_%d.png" % (side, i),
                    group=group.element(side),
                    ground_truth=fo.Classification(label="ab"[i % 2]),
                    embeddings=rng.normal(size=16).astype(np.float32),
                )
            )
    ds.add_samples(samples)
    assert ds.media_type == "group"
    return ds


@pytest.mark.parametrize("name", DETECTORS)
def test_video_dataset(name, new_dataset):
    ds = _video_dataset(new_dataset)
    expect_clear_error(name, ds, ["video", "to_frames"])


@pytest.mark.parametrize("name", DETECTORS)
def test_grouped_dataset(name, new_dataset):
    ds = _group_dataset(new_dataset)
    expect_clear_error(name, ds, ["group"])


# ------------------------------------------------------ compute_embeddings ---


def test_embeddings_unreadable_images_are_skipped_counted_tagged(new_dataset, tmp_path):
    import fiftyone as fo
    from PIL import Image

    paths = []
    for i in range(3):
        path = tmp_path / ("ok_%d.png" % i)
        Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(path)
        paths.append(str(path))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    paths += [str(corrupt), str(tmp_path / "missing.png")]
    ds = new_dataset()
    ds.add_samples(
        [fo.Sample(filepath=p, ground_truth=fo.Classification(label="x")) for p in paths]
    )
    before = snapshot(ds)
    summary = run_operator(
        "compute_embeddings", ds, model="resnet18", weights="", batch_size=4
    )
    assert summary["num_embedded"] == 3 and summary["num_unreadable"] == 2, summary
    tagged = set(ds.match_tags("embeddings:unreadable").values("filepath"))
    assert tagged == set(paths[3:])
    embedded = dict(zip(ds.values("filepath"), ds.values("embeddings")))
    assert all(embedded[p] is not None for p in paths[:3])
    assert all(embedded[p] is None for p in paths[3:])
    after = snapshot(ds)
    for old, new in zip(before["samples"], after["samples"]):
        assert new["ground_truth"] == old["ground_truth"]
        assert new["filepath"] == old["filepath"]


@pytest.mark.parametrize("case", ["empty", "video", "group"])
def test_embeddings_rejects_empty_video_group(case, new_dataset, make):
    from fiftyone.operators.executor import ExecutionError

    if case == "empty":
        ds = make(n=10)
        target, mention = ds.limit(0), "empty"
    elif case == "video":
        ds = _video_dataset(new_dataset)
        target, mention = ds, "video"
    else:
        ds = _group_dataset(new_dataset)
        target, mention = ds, "group"
    before = snapshot(ds)
    with pytest.raises(ExecutionError) as info:
        run_operator("compute_embeddings", target, weights="")
    line = error_line(info.value)
    assert "InputError" in line and mention in line.lower(), line
    assert_unchanged(ds, before)
