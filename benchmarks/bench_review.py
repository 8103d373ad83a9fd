"""Every verdict improves the score? A simulated reviewer on CIFAR-10N.

For each label set (default ``random1`` and ``worst``; the first ``--n``
images, all 50,000 by default; shared MobileNetV2 embeddings):

1. ``find_label_issues`` (preset ``fast``) through the SDK;
2. a simulated reviewer (answers from the clean labels) reviews the most
   suspicious not-yet-reviewed samples until 100, 200, then 500 are
   reviewed (the panel's review mode: largest score first); each answer
   goes through the plugin's verdict bookkeeping (``record_verdict``:
   ``correct``, or ``relabel`` to the clean class, original kept);
3. a 100-sample audit (``start_label_audit``, uniform, seeded), reviewed
   the same way in audit mode (samples it drew that were reviewed in step 2
   keep their verdict and count);
4. after each step, ``find_label_issues(rescore=True)`` re-fits the
   consensus from the verdicts so far.

After each step it reports, on the samples **not yet reviewed** (their
noise = original label != clean label): AUROC and precision at K (K = 100,
500, and K = the number of wrong labels left) of the score *before* the
re-score (the previous scores, same samples) and *after* it, the flag count
and the estimated noise rate with its basis; for the audit, its 95% Wilson
interval against the true share of wrong labels.

Reading it: the not-yet-reviewed pool loses its most obvious errors at each
step, so its AUROC can fall even with a perfect re-score; the re-score's own
effect is ``after - before`` on the same pool.

Writes ``results/<out>.json``, ``results/<out>.md`` and ``results/<out>.png``
(default ``<out>`` = ``review``). Run (final, idle machine)::

    .venv/bin/python benchmarks/bench_review.py
    # a quick check on a subset, results apart:
    nice -n 10 .venv/bin/python benchmarks/bench_review.py --n 5000 --out review_5k
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

STEPS = (100, 200, 500)
AUDIT = 100
PLUGIN = "@label-noise/curation/"


def load(label_set, n):
    import fiftyone as fo
    from synthetic import insert_labeled_samples

    d = common.cifar10n(label_set, limit=n)
    name = "bench-review-" + label_set
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    cls = d["classes"]
    insert_labeled_samples(
        ds, d["filepath"],
        {"ground_truth": [cls[c] for c in d["noisy"]], "clean_label": [cls[c] for c in d["clean"]]},
        d["x"], rand=np.random.default_rng(0).random(len(d["noisy"])),
    )
    return ds


def metrics(is_noisy, score, mask):
    """AUROC and precision at K of ``score`` on the samples of ``mask``."""
    from sklearn.metrics import roc_auc_score

    y, s = is_noisy[mask], np.nan_to_num(score[mask], nan=0.0)
    order = np.argsort(-s, kind="stable")
    out = {"auroc": float(roc_auc_score(y, s)), "left_wrong": int(y.sum()), "left": int(mask.sum())}
    for k in (100, 500):
        out["p@%d" % k] = float(y[order[:k]].mean())
    k = int(y.sum())
    out["p@K"] = float(y[order[:k]].mean()) if k else float("nan")
    return out


def review(review_mod, ds, ids, truth_clean, given, mode="review"):
    """The simulated reviewer: the clean label is the answer; one verdict
    call per answer (what the panel does one sample at a time)."""
    right = [i for i in ids if given[i] == truth_clean[i]]
    if right:
        review_mod.record_verdict(ds, right, "correct", mode=mode)
    by_class = {}
    for i in ids:
        if given[i] != truth_clean[i]:
            by_class.setdefault(truth_clean[i], []).append(i)
    for c, members in sorted(by_class.items()):
        review_mod.record_verdict(ds, members, "relabel", new_label=c, mode=mode)


def consensus_info(ds):
    config = ds.get_run_info("consensus").config
    est = ds.load_run_results("consensus", cache=False).noise_estimate or {}
    return dict(
        noise_rate=est.get("rate"), rate_basis=est.get("source"),
        calibration=est.get("calibration"), weights_source=getattr(config, "weights_source", None),
    )


def run_set(label_set, n, op, review_mod, audit_mod):
    ds = load(label_set, n)
    ids = ds.values("id")
    index = {sid: k for k, sid in enumerate(ids)}
    given = dict(zip(ids, ds.values("ground_truth.label")))
    clean = dict(zip(ids, ds.values("clean_label.label")))
    is_noisy = np.array([given[i] != clean[i] for i in ids])
    rows = []
    t0 = time.time()
    first = op("find_label_issues")(ds, preset="fast")
    reviewed = np.zeros(len(ids), bool)

    def scores():
        vals = dict(zip(*ds.values(["id", "noise_score"])))
        return np.array([vals[i] if vals[i] is not None else np.nan for i in ids], float)

    def step(name, before, t):
        again = op("find_label_issues")(ds, rescore=True)
        after = metrics(is_noisy, scores(), ~reviewed)
        row = dict(set=label_set, n=len(ids), step=name, reviewed=int(reviewed.sum()),
                   **{k + "_before": v for k, v in (before or {}).items()},
                   **{k + "_after": v for k, v in after.items()},
                   num_flagged=again["num_flagged"], seconds=round(time.time() - t, 1),
                   **consensus_info(ds))
        print(row, flush=True)
        return row

    score = scores()
    rows.append(dict(set=label_set, n=len(ids), step="0 (no review)", reviewed=0,
                     **{k + "_after": v for k, v in metrics(is_noisy, score, ~reviewed).items()},
                     num_flagged=first["num_flagged"], seconds=round(time.time() - t0, 1),
                     **consensus_info(ds)))
    print(rows[-1], flush=True)
    for target in STEPS:
        order = np.argsort(-np.nan_to_num(score, nan=-1.0), kind="stable")
        todo = [ids[k] for k in order if not reviewed[k]][: target - int(reviewed.sum())]
        t = time.time()
        review(review_mod, ds, todo, clean, given)
        reviewed[[index[i] for i in todo]] = True
        rows.append(step("top %d" % target, metrics(is_noisy, score, ~reviewed), t))
        score = scores()
    op("start_label_audit")(ds, size=AUDIT, seed=51)
    ds.reload()
    audit_ids = list(ds.load_run_results("label_audit", cache=False).sample_ids)
    todo = [i for i in audit_ids if not reviewed[index[i]]]
    t = time.time()
    review(review_mod, ds, todo, clean, given, mode="audit")
    est = audit_mod.update_audit(ds, "label_audit")["estimate"]
    reviewed[[index[i] for i in todo]] = True
    row = step("+ audit %d" % AUDIT, metrics(is_noisy, score, ~reviewed), t)
    truth = float(is_noisy.mean())
    row.update(audit_rate=est["rate"], audit_low=est["low"], audit_high=est["high"],
               true_rate=truth, audit_covers=bool(est["low"] <= truth <= est["high"]),
               audit_new=len(todo))
    rows.append(row)
    ds.delete()
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for metric, ax in zip(("auroc", "p@K"), axes):
        for label_set in sorted({r["set"] for r in rows}):
            part = [r for r in rows if r["set"] == label_set]
            x = [r["reviewed"] for r in part]
            ax.plot(x, [r[metric + "_after"] for r in part], "o-", label="%s, re-scored" % label_set)
            ax.plot(x[1:], [r[metric + "_before"] for r in part[1:]], "x--",
                    label="%s, previous scores" % label_set)
        ax.set_xlabel("samples reviewed (top 100/200/500, then + audit of 100)")
        ax.set_ylabel(metric + " on not-yet-reviewed samples")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


TABLE_COLUMNS = ["set", "step", "reviewed", "auroc_before", "auroc_after", "p@100_after",
                 "p@500_after", "p@K_before", "p@K_after", "left_wrong_after", "num_flagged",
                 "noise_rate", "rate_basis"]
AUDIT_COLUMNS = ["set", "audit_rate", "audit_low", "audit_high", "true_rate", "audit_covers"]
SECTION_TITLE = "## Every verdict improves the score? (simulated review)"


def section(payload, plot_path="benchmarks/results/review.png"):
    """The BENCHMARKS.md section of a run (``results/review.json``)."""
    rows = payload["rows"]
    when = (payload.get("machine") or {}).get("date", "?")
    n = rows[0]["n"] if rows else "?"
    return "\n".join([
        "`benchmarks/bench_review.py` (`make bench-methods`): CIFAR-10N, %s images, shared "
        "MobileNetV2 embeddings. `find_label_issues` (preset fast), then a simulated reviewer "
        "(answers = clean labels, through `record_verdict`: label right, or relabel with the "
        "original kept) reviews the top 100, 200, 500 by the current score, then a uniform "
        "audit of 100; `find_label_issues(rescore=True)` after each step. AUROC and precision "
        "at K on the samples **not yet reviewed**, with the scores before (`_before`) and after "
        "(`_after`) the re-score; `p@K`: K = wrong labels left. Run %s." % (f"{n:,}", when),
        "",
        common.markdown_table(rows, TABLE_COLUMNS),
        "",
        "Audit (95% Wilson interval) against the true share of wrong labels:",
        "",
        common.markdown_table([r for r in rows if "audit_rate" in r], AUDIT_COLUMNS),
        "",
        "![simulated review](%s)" % plot_path,
    ])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="random1,worst")
    parser.add_argument("--n", type=int, default=None, help="first N CIFAR-10N images (default all)")
    parser.add_argument("--out", default="review", help="results/<out>.{json,md,png}")
    args = parser.parse_args(argv)
    mongo = common.private_database()
    try:
        import fiftyone as fo
        import fiftyone.operators as foo

        fo.config.show_progress_bars = False
        op = lambda name: foo.get_operator(PLUGIN + name)  # noqa: E731
        review_mod = sys.modules[type(op("record_label_verdict")).__module__]
        audit_mod = sys.modules[type(op("start_label_audit")).__module__]
        rows = []
        for label_set in args.sets.split(","):
            rows += run_set(label_set, args.n, op, review_mod, audit_mod)
        common.save(args.out, {"rows": rows, "n": args.n})
        table = common.markdown_table(rows, TABLE_COLUMNS)
        audit = common.markdown_table([r for r in rows if "audit_rate" in r], AUDIT_COLUMNS)
        with open(os.path.join(common.RESULTS, args.out + ".md"), "w") as f:
            f.write(table + "\n\n" + audit + "\n")
        plot(rows, os.path.join(common.RESULTS, args.out + ".png"))
        print(table)
        print(audit)
    finally:
        mongo.stop()


if __name__ == "__main__":
    main()
