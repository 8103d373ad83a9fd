import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator

FAST = dict(epochs=12, self_label_epochs=4, num_heads=3, k=10)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread avoids oversubscribing a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _acc(true, pred):
    from methods.scan import cluster_metrics

    classes = sorted(set(true))
    index = {c: i for i, c in enumerate(classes)}
    return cluster_metrics([index[c] for c in true], pred)["acc"]


def test_scan_with_labels_matches_classes_and_flags_noise(blob_dataset):
    ds = blob_dataset(num_classes=4, per_class=60, noise_rate=0.15, seed=1)
    summary = run_operator("compute_scan_clusters", ds, tag="scan:mislabeled", **FAST)
    n = len(ds)
    assert summary["num_samples"] == n and summary["labeled"] == n
    assert summary["num_clusters"] == 4
    clusters = np.array(ds.values("scan_cluster"))
    assert set(clusters.tolist()) <= set(range(4))
    clean = ds.values("clean_label.label")
    assert _acc(clean, clusters) > 0.9
    # metrics are against the given (noisy) labels: ~85% at best
    assert 0.7 < summary["acc"] <= 0.9 and summary["nmi"] > 0.5 and summary["ari"] > 0.4
    conf = np.array(ds.values("scan_confidence"))
    assert ((conf > 0.2) & (conf <= 1.0)).all()

    suggested = ds.values("scan_label.label")
    assert np.mean([s == c for s, c in zip(suggested, clean)]) > 0.9
    noisy = np.array(ds.values("is_noisy"))
    score = np.array(ds.values("scan_noise"))
    assert score[noisy].mean() > score[~noisy].mean() + 0.5
    flags = np.array(ds.values("scan_mislabeled"))
    assert summary["num_flagged"] == flags.sum() > 0
    assert noisy[flags].mean() > 0.8  # precision of the flags (chance: 0.15)
    assert ds.count_sample_tags().get("scan:mislabeled") == flags.sum()
    given = ds.values("ground_truth.label")
    assert all(s != g for s, g, f in zip(suggested, given, flags) if f)

    info = ds.get_run_info("scan")
    assert info.config.method == "scan"
    assert set(info.config.fields) == {
        "scan_cluster", "scan_confidence", "scan_label", "scan_noise", "scan_mislabeled",
    }
    assert info.config.metrics["acc"] == pytest.approx(summary["acc"], abs=1e-4)
    from store.runs import load_results

    results = load_results(ds, "scan")
    assert sorted(c for c in results["cluster_to_class"]) == sorted(set(given))
    assert set(results["metrics"]) == {"acc", "nmi", "ari"}
    assert sum(results["cluster_sizes"]) == n
    # the user's label field is untouched
    assert ds.values("ground_truth.label") == given


def test_scan_without_labels_and_with_missing_label_field(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=40, noise_rate=0.0, seed=2)
    summary = run_operator(
        "compute_scan_clusters", ds, label_field="", num_clusters=3, **FAST
    )
    assert summary["labeled"] == 0 and "acc" not in summary
    assert "num_flagged" not in summary
    clusters = ds.values("scan_cluster")
    assert _acc(ds.values("clean_label.label"), clusters) > 0.9
    assert set(ds.get_run_info("scan").config.fields) == {"scan_cluster", "scan_confidence"}
    assert not ds.has_field("scan_label")

    # a label field that does not exist: unlabeled run with a note
    summary = run_operator(
        "compute_scan_clusters", ds, label_field="nope", run_key="scan2",
        output_field="scan2", confidence_field="", num_clusters=6, **FAST
    )
    assert summary["num_clusters"] == 6 and "nope" in summary["notes"][0]
    assert set(ds.values("scan2")) <= set(range(6))


def test_scan_partially_labeled_view_and_sdk(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=40, noise_rate=0.0, seed=4)
    unlabeled = ds.take(30, seed=0)
    unlabeled.set_field("ground_truth", None).save()
    summary = operator("compute_scan_clusters")(ds, **FAST)
    assert summary["labeled"] == len(ds) - 30
    assert summary["acc"] > 0.9
    # unlabeled samples get a cluster and a suggested label but no noise score
    assert unlabeled.count("scan_cluster") == 30
    assert unlabeled.count("scan_label") == 30
    assert unlabeled.count("scan_noise") == 0
    with pytest.raises(TypeError):
        operator("compute_scan_clusters")(ds, not_a_param=1)
    # max_steps reaches the method from the SDK and is recorded with the run
    # (300 epochs of one batch = 300 steps; the cap makes 250)
    operator("compute_scan_clusters")(ds, run_key="scan_capped", **dict(FAST, epochs=300, max_steps=250))
    assert ds.get_run_info("scan_capped").config.params["max_steps"] == 250
    assert ds.load_run_results("scan_capped", cache=False).clustering_steps_run == 250


def test_scan_bad_input_writes_nothing(blob_dataset):
    from store.data import InputError

    ds = blob_dataset(num_classes=2, per_class=10)
    with pytest.raises(Exception, match="embed_missing"):
        operator("compute_scan_clusters")(ds, embeddings_field="embed_missing")
    with pytest.raises(Exception, match="is_noisy"):
        operator("compute_scan_clusters")(ds, label_field="is_noisy")
    assert not ds.has_field("scan_cluster") and ds.list_runs() == []
    assert issubclass(InputError, ValueError)


def test_scan_delegated_unlabeled(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=30, noise_rate=0.0, seed=5)
    doc = run_delegated(
        "compute_scan_clusters", ds, label_field="", num_clusters=3, run_key="scan_d",
        output_field="scan_d", **FAST
    )
    assert doc.run_state == "completed", doc.result
    assert ds.count("scan_d") == len(ds)
    assert ds.get_run_info("scan_d").config.params["num_clusters"] == 3


def test_scan_delegated_with_labels(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=30, noise_rate=0.1, seed=6)
    doc = run_delegated("compute_scan_clusters", ds, **FAST)
    assert doc.run_state == "completed", doc.result
    assert ds.count("scan_label") == len(ds)
    assert ds.get_run_info("scan").config.metrics["acc"] > 0.7


def test_scan_simclr_pretext_on_images(blob_dataset):
    ds = blob_dataset(num_classes=2, per_class=6, noise_rate=0.0, seed=7)
    summary = run_operator(
        "compute_scan_clusters", ds, pretext="simclr", simclr_weights="",
        simclr_epochs=1, simclr_image_size=32, simclr_batch_size=6,
        simclr_embeddings_field="simclr_emb", k=3, epochs=2, self_label_epochs=1,
        num_heads=2,
    )
    assert summary["num_samples"] == 12 and "SimCLR" in summary["notes"][0]
    assert ds.count("scan_cluster") == 12
    emb = np.array(ds.values("simclr_emb"))
    assert emb.shape == (12, 512) and np.isfinite(emb).all()
