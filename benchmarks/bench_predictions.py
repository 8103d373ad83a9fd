"""A model's predictions as evidence (``pred_field``): CIFAR-10N ``worst``.

The out-of-sample probabilities of five fine-tuned networks
(``../shared/data/cifar10n-predictions``) are stored on a 50,000-sample
dataset in a private database as ``fo.Classification`` fields with logits
(what ``apply_model(..., store_logits=True)`` writes), and scored, for each
network alone, two pairs and all five:

- ``network alone``: its self-confidence ``1 - p[given]``; suggestion = its
  most probable *other* class;
- ``cleanlab``: ``find_label_issues`` (count = estimated noise) and
  ``get_label_quality_scores`` (ranking) on the same probabilities
  (multi-network sets: their mean); suggestion = argmax;
- ``fiftyone mistakenness``: ``fiftyone.brain.compute_mistakenness`` on the
  same field (single networks only: it takes one field);
- ``plugin consensus``: the ``compute_noise_score`` operator with
  ``pred_field`` (the full operator: read, in-sample check, pool with the
  plugin's own ``compute_label_quality`` run, calibration, writes).

In-sample rows: a logistic regression and an extremely-randomised forest
fitted on *all* the noisy labels (embeddings), given as ``pred_field``; the
consensus without predictions is the reference. A ``find_label_issues``
chain (fast preset) with ``pred_field`` runs on a 5,000-sample subset.
``--scale``: the read + pool cost at 1,000,000 x 10 (see ``scale_rows``).

cleanlab is a benchmark-only dependency (AGPL); the plugin never imports it.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

NETS = ("resnet18", "resnet50d", "efficientnet_b1", "swin_base", "twins_pcpvt_base")
SETS = [(n,) for n in NETS] + [("resnet18", "efficientnet_b1"), ("swin_base", "twins_pcpvt_base"),
                               NETS]
PRED = os.path.join(common.SHARED, "cifar10n-predictions", "worst_cv_pred_probs.npz")


def metrics(d, score, suggestion=None, rate=None, seconds=None):
    wrong = d["is_noisy"]
    m = common.detection_scores(wrong, score)
    out = dict(auroc=m["auroc"], precision_at_k=m["precision_at_k"],
               precision_top1pct=m["precision_top1pct"],
               est_rate=None if rate is None else float(rate), true_rate=float(wrong.mean()))
    if suggestion is not None:
        out["suggestion_acc"] = float((np.asarray(suggestion)[wrong] == d["clean"][wrong]).mean())
    out["seconds"] = None if seconds is None else round(float(seconds), 1)
    return out


def other_class(p, labels):
    q = np.array(p, np.float64)
    q[np.arange(len(labels)), labels] = -1.0
    return q.argmax(1)


def load_dataset(d, probs, name="bench-predictions"):
    import fiftyone as fo
    from synthetic import insert_labeled_samples

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    cls = d["classes"]
    insert_labeled_samples(ds, d["filepath"], {"ground_truth": [cls[c] for c in d["noisy"]]},
                           d["x"], rand=np.random.default_rng(0).random(len(d["noisy"])))
    for field, p in probs.items():
        set_predictions(ds, field, p, cls)
    return ds


def set_predictions(ds, field, p, cls):
    """``fo.Classification`` with logits (log-probabilities), as apply_model
    writes them, and the class order in ``dataset.classes``."""
    import fiftyone as fo

    logits = np.log(np.clip(p, 1e-12, 1.0)).astype(np.float32)
    j = p.argmax(1)
    ds.set_values(field, [fo.Classification(label=cls[int(a)], confidence=float(q[a]), logits=z)
                          for a, q, z in zip(j, p, logits)])
    ds.classes[field] = list(cls)
    ds.save()


def run_op(name, view, **params):
    import fiftyone.operators as foo

    return foo.get_operator("@label-noise/curation/" + name)(view, **params)


def consensus_row(ds, d, cls, fields):
    with common.Timer() as t:
        summary = run_op("compute_noise_score", ds, pred_field=list(fields))
    score = np.array(ds.values("noise_score"), float)
    index = {c: i for i, c in enumerate(cls)}
    sugg = np.array([index.get(v, -1) for v in ds.values("suggested_label.label")])
    row = metrics(d, score, sugg, summary.get("noise_rate"), t.seconds)
    report = summary.get("predictions") or {}
    row["weights"] = ", ".join(
        "%s %s" % (k, "%.2f" % r["weight"] if r.get("weight") is not None else "out")
        for k, r in report.items())
    row["in_sample"] = ", ".join("%s %s" % (k, r.get("in_sample")) for k, r in report.items())
    return row, summary


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None, help="first N samples only (iterating)")
    parser.add_argument("--no-mistakenness", action="store_true")
    parser.add_argument("--scale", action="store_true", help="only the 1M read + pool timing")
    parser.add_argument("--scale-n", type=int, default=1_000_000, help="rows of --scale")
    args = parser.parse_args(argv)
    if not os.path.exists(PRED):
        sys.exit("shared data not found: %s" % PRED)
    mongo = common.private_database()
    import fiftyone as fo

    fo.config.show_progress_bars = False
    try:
        if args.scale:
            rows = scale_rows(args.scale_n)
            common.save("predictions_scale" if args.scale_n == 1_000_000 else "predictions_scale_quick",
                        dict(rows=rows, n=args.scale_n))
            return
        run(args)
    finally:
        mongo.stop()


def run(args):
    import fiftyone.brain as fob
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    d = common.cifar10n("worst", limit=args.limit)
    z = np.load(PRED)
    assert (z["index"][: len(d["index"])] == d["index"]).all()
    n = len(d["noisy"])
    probs = {net: z[net][:n].astype(np.float64) for net in NETS}
    cls = d["classes"]
    y = d["noisy"]
    insample = in_sample_models(d)
    started = time.time()
    ds = load_dataset(d, dict(probs, **insample))
    print("dataset: %d samples in %.0f s" % (n, time.time() - started), flush=True)
    with common.Timer() as t_lq:
        run_op("compute_label_quality", ds)
    with common.Timer() as t:
        base_summary = run_op("compute_noise_score", ds)
    base_score = np.array(ds.values("noise_score"), float)
    index = {c: i for i, c in enumerate(cls)}
    base_sugg = np.array([index.get(v, -1) for v in ds.values("suggested_label.label")])
    base = dict(set="none (embeddings only)", method="plugin consensus",
                **metrics(d, base_score, base_sugg, base_summary.get("noise_rate"),
                          t.seconds + t_lq.seconds))
    rows = [base]
    print(base, flush=True)
    for fields in SETS:
        name = "+".join(fields) if len(fields) < len(NETS) else "all five"
        p = np.mean([probs[f] for f in fields], axis=0)
        with common.Timer() as t:
            alone = 1.0 - p[np.arange(n), y]
        rows.append(dict(set=name, method="network alone" if len(fields) == 1 else "mean of networks",
                         **metrics(d, alone, other_class(p, y), None, t.seconds)))
        with common.Timer() as t:
            issues = find_label_issues(y, p, n_jobs=1)
            quality = get_label_quality_scores(y, p)
        rows.append(dict(set=name, method="cleanlab", **metrics(d, -quality, p.argmax(1),
                                                                 issues.mean(), t.seconds)))
        if len(fields) == 1 and not args.no_mistakenness:
            if "mistakenness" in ds.list_brain_runs():
                ds.delete_brain_run("mistakenness")
            with common.Timer() as t:
                fob.compute_mistakenness(ds, fields[0], label_field="ground_truth",
                                         mistakenness_field="mistakenness", use_logits=True)
            mist = np.array(ds.values("mistakenness"), float)
            rows.append(dict(set=name, method="fiftyone mistakenness",
                             **metrics(d, mist, p.argmax(1), None, t.seconds)))
        row, _ = consensus_row(ds, d, cls, fields)
        rows.append(dict(set=name, method="plugin consensus", **row))
        for r in rows[-4:]:
            print(r, flush=True)
    for name in insample:
        row, summary = consensus_row(ds, d, cls, [name])
        rows.append(dict(set="in-sample " + name, method="plugin consensus", **row,
                         auroc_change=row["auroc"] - base["auroc"]))
        alone = 1.0 - insample[name][np.arange(n), y]
        rows.append(dict(set="in-sample " + name, method="network alone",
                         **metrics(d, alone, other_class(insample[name], y))))
        print(rows[-2], summary.get("predictions_note"), flush=True)
    chain = chain_run(d, probs)
    print(chain, flush=True)
    common.save("predictions" if args.limit is None else "predictions_quick",
                dict(rows=rows, chain=[chain], n=n))
    print(common.markdown_table(rows, COLUMNS))


COLUMNS = ["set", "method", "auroc", "precision_at_k", "precision_top1pct", "est_rate",
           "true_rate", "suggestion_acc", "seconds", "weights", "in_sample"]


def in_sample_models(d):
    """Predictions of models fitted on every noisy label (in-sample)."""
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(d["x"])
    lr = LogisticRegression(C=0.1, max_iter=300).fit(x, d["noisy"]).predict_proba(x)
    forest = ExtraTreesClassifier(n_estimators=25, random_state=0, n_jobs=1).fit(x, d["noisy"])
    return {"insample_logreg": lr, "insample_forest": forest.predict_proba(x)}


def chain_run(d, probs, n=5000):
    """``find_label_issues`` (fast preset) with ``pred_field`` on the first
    ``n`` samples: the whole operator chain, every step's time."""
    n = min(n, len(d["noisy"]))
    sub = {k: (v[:n] if hasattr(v, "__len__") and len(v) == len(d["noisy"]) and k != "classes"
               else v) for k, v in d.items()}
    ds = load_dataset(sub, {"resnet18": probs["resnet18"][:n]}, name="bench-predictions-chain")
    with common.Timer() as t:
        summary = run_op("find_label_issues", ds, pred_field="resnet18")
    score = np.array(ds.values("noise_score"), float)
    index = {c: i for i, c in enumerate(sub["classes"])}
    sugg = np.array([index.get(v, -1) for v in ds.values("suggested_label.label")])
    row = dict(set="resnet18 (first %d)" % n, method="find_label_issues fast + pred_field",
               **metrics(sub, score, sugg, summary.get("noise_rate"), t.seconds))
    alone = 1.0 - probs["resnet18"][:n][np.arange(n), sub["noisy"]]
    row["network_alone_auroc"] = common.detection_scores(sub["is_noisy"], alone)["auroc"]
    return row


def scale_rows(n=1_000_000, k=10):
    """Read + pool at 1M x 10: the logits field read through the plugin's
    bulk path vs reading the field's values with FiftyOne, then the
    in-sample check and the pool (methods level)."""
    import fiftyone as fo
    from synthetic import insert_labeled_samples

    from methods.noise_estimate import pool_probabilities
    from methods.predictions import in_sample_check
    import importlib

    import fiftyone.operators as foo

    # the plugin's own package (its modules import ``..methods`` relatively)
    op = foo.get_operator("@label-noise/curation/compute_noise_score")
    lnp = importlib.import_module(sys.modules[type(op).__module__].__package__ + ".predictions")

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, k, n)
    y = np.where(rng.random(n) < 0.1, rng.integers(0, k, n), y_true)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    logits[np.arange(n), y_true] += 3.0
    ref = np.exp(rng.normal(size=(n, k)))
    ref[np.arange(n), y_true] += 2.0
    ref /= ref.sum(1, keepdims=True)
    cls = ["c%d" % i for i in range(k)]
    rows = []
    ds = fo.Dataset()
    with common.Timer() as t:
        for start in range(0, n, 100_000):
            stop = min(start + 100_000, n)
            insert_labeled_samples(ds, ["/tmp/%d.png" % i for i in range(start, stop)],
                                   {"ground_truth": [cls[c] for c in y[start:stop]]},
                                   np.zeros((stop - start, 1), np.float32))
        import fiftyone.core.utils as fou
        coll = ds._sample_collection
        from pymongo import UpdateOne
        ids = ds.values("_id")
        for start in range(0, n, 50_000):
            coll.bulk_write([UpdateOne({"_id": i}, {"$set": {"pred": {
                "_id": i, "_cls": "Classification", "tags": [], "label": cls[int(z.argmax())],
                "logits": fou.serialize_numpy_array(z)}}})
                for i, z in zip(ids[start:start + 50_000], logits[start:start + 50_000])],
                ordered=False)
        ds.add_sample_field("pred", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        ds.classes["pred"] = cls
        ds.save()
    rows.append(dict(step="insert %d samples with logits" % n, seconds=round(t.seconds, 1)))
    sids = np.array(ds.values("id"), dtype=object)
    with common.Timer() as t:
        ds.values("pred.logits")
    rows.append(dict(step="FiftyOne values('pred.logits')", seconds=round(t.seconds, 1)))
    with common.Timer() as t:
        (pred,) = lnp.read_predictions(ds, "ground_truth", ["pred"], sids, cls, y)
    rows.append(dict(step="plugin read_predictions (checks + bulk read + softmax + align)",
                     seconds=round(t.seconds, 1), peak_rss_gib=round(common.peak_rss_gib(), 2)))
    with common.Timer() as t:
        check = in_sample_check(pred.probabilities, y, ref)
    rows.append(dict(step="in-sample check", seconds=round(t.seconds, 1),
                     note="in_sample=%s" % check["in_sample"]))
    with common.Timer() as t:
        _, w = pool_probabilities({"reference": ref, "pred": pred.probabilities}, y)
    rows.append(dict(step="pool (log-linear, 2-fold check)", seconds=round(t.seconds, 1),
                     peak_rss_gib=round(common.peak_rss_gib(), 2),
                     note=", ".join("%s %.2f" % kv for kv in w.items())))
    for r in rows:
        print(r, flush=True)
    return rows


def _four(row):
    """Ranking metrics with 4 decimals (the differences here are small)."""
    keys = ("auroc", "precision_at_k", "suggestion_acc", "auroc_change", "network_alone_auroc")
    return {k: ("%.4f" % v if k in keys and isinstance(v, float) else v) for k, v in row.items()}


def section(data):
    """BENCHMARKS.md lines (``run_all.write_report``)."""
    lines = [
        "## Your model's predictions as evidence (`bench_predictions.py`)", "",
        "CIFAR-10N `worst` (%s samples, %.1f%% wrong labels): the out-of-sample probabilities "
        "of five fine-tuned networks (`../shared/data/cifar10n-predictions`) stored as "
        "`fo.Classification` with logits. `network alone` = its self-confidence (suggestion: "
        "its most probable other class); `mean of networks` for the sets of several; "
        "`cleanlab` = `get_label_quality_scores` (ranking) and `find_label_issues` (count) on "
        "the same probabilities (their mean for several; suggestion = argmax); `fiftyone "
        "mistakenness` on the same field; `plugin consensus` = the `compute_noise_score` "
        "operator with `pred_field` after `compute_label_quality` (read, in-sample check, pool, "
        "calibration, writes; `seconds` = that operator). `est_rate`: the estimated share of "
        "wrong labels (cleanlab: its count), `suggestion_acc`: the suggested class is the true "
        "one, on the wrong labels. In-sample rows: models fitted on every noisy label of the "
        "embeddings; `auroc_change` against the consensus without predictions (first row). "
        "Run %s." % ("{:,}".format(data["n"]), 100 * data["rows"][0]["true_rate"],
                    data["machine"]["date"]), "",
        common.markdown_table([_four(r) for r in data["rows"]], COLUMNS + ["auroc_change"]), "",
    ]
    if data.get("chain"):
        lines += ["The whole chain (`find_label_issues`, fast preset, `pred_field=\"resnet18\"`) "
                  "on the first 5,000 samples:", "",
                  common.markdown_table([_four(r) for r in data["chain"]], ["set", "method", "auroc", "network_alone_auroc",
                                                        "precision_at_k", "est_rate", "true_rate",
                                                        "suggestion_acc", "seconds"]), ""]
    scale = os.path.join(common.RESULTS, "predictions_scale.json")
    if os.path.exists(scale):
        import json

        rows = json.load(open(scale))["rows"]
        lines += ["Reading and pooling predictions at 1,000,000 x 10 classes "
                  "(`bench_predictions.py --scale`):", "",
                  common.markdown_table(rows, ["step", "seconds", "peak_rss_gib", "note"]), ""]
    return lines


if __name__ == "__main__":
    main()
