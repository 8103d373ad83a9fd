"""The detection section of BENCHMARKS.md, from the suite's JSON.

One summary table per metric (sets as columns, methods as rows), the
noise-rate and calibration tables, reliability diagrams of the consensus'
``noise_score`` (PNG per set and one grid), then each set's full table and
ROC curve folded away. Everything comes from ``results/suite*.json``
(:func:`bench_suite.main`); nothing is measured here.
"""

import os

import common
from bench_suite import (
    CIFAR10_PAIRS,
    CLEANLAB,
    COLUMNS,
    INJECTED_SEEDS,
    LABEL_QUALITY,
    MISTAKENNESS,
    NO_VERIFIED,
    VERIFIED,
)

PLOTS = "benchmarks/results/plots"
HEADLINE = (NO_VERIFIED, VERIFIED, LABEL_QUALITY, CLEANLAB, MISTAKENNESS)
SET_LABELS = {
    "cifar10n-random1": "random1", "cifar10n-random2": "random2", "cifar10n-random3": "random3",
    "cifar10n-worst": "worst", "cifar10-clean": "clean", "cifar10-uniform-1": "unif 1%",
    "cifar10-uniform-3": "unif 3%", "cifar10-pair-1": "pair 1%", "cifar10-pair-3": "pair 3%",
    "fmnist-uniform-20": "fm unif 20", "fmnist-uniform-40": "fm unif 40",
    "fmnist-asym-20": "fm asym 20", "fmnist-asym-40": "fm asym 40",
    "cifar10n-unanimous": "unanimous", "cifar10n-unanimous-10k": "unan 10k",
    "cifar10n-unanimous-5k": "unan 5k", "cifar10-uniform-1-10k": "unif 1% 10k",
}


def section(suite, roc_plots=None):
    """Markdown lines of the detection section; writes the reliability PNGs."""
    sets = list(suite["sets"])
    lines = ["## Detection (all methods, same data)", "", _intro(suite), ""]
    lines += [common.markdown_table([_set_row(name, suite["sets"][name]) for name in sets]), ""]

    def table(title, text, key, fmt=_num, extra=()):
        rows = [_metric_row(m, suite, sets, key, fmt) for m in _methods(suite)]
        rows = [r for r in rows if any(r[_label(s)] != "" for s in sets)] + list(extra)
        return ["### %s" % title, "", text, "",
                common.markdown_table(rows, ["method"] + [_label(s) for s in sets]), ""]

    lines += table("AUROC", "Area under the ROC curve of each score for finding the wrong labels "
                   "(undefined on `clean`: no wrong label).", "auroc",
                   extra=[_delta_row("Δ consensus (no verified) − cleanlab", suite, sets, "auroc")])
    lines += table("Precision at K", "Share of truly wrong labels among each score's top K, "
                   "K = the true number of wrong labels.", "precision_at_k",
                   extra=[_delta_row("Δ consensus (no verified) − cleanlab", suite, sets, "precision_at_k")])
    lines += table("Precision in the top 1%", "Share of truly wrong labels among the 1% highest "
                   "scores (on `clean` every one is a false alarm).", "precision_top1pct")
    lines += _noise_rate_table(suite, sets)
    lines += table("Share flagged", "Share of the samples each method flags with its default "
                   "rule (consensus: `noise_flagged`; cleanlab: `find_label_issues`; mistakenness "
                   "> 0.5; label quality: its Confident Learning issues).", "flagged_share", _pct)
    lines += table("F1 of the default flags", "", "f1")
    lines += table("Suggestion accuracy on the truly wrong labels", "Share of the wrong labels "
                   "whose suggestion is the true class (consensus: `suggested_label`; label "
                   "quality: `predicted_label`; cleanlab and mistakenness: the argmax of the CV "
                   "probabilities).", "suggestion acc (wrong labels)")
    lines += _calibration_table(suite, sets)
    lines += table("Seconds", "Wall time, reading and writing included. Consensus rows: the fast "
                   "detectors plus that consensus run (what `find_label_issues` costs); the "
                   "consensus step alone is in the per-set tables (`consensus_seconds`). "
                   "cleanlab and mistakenness include the 5-fold CV.", "seconds", _secs)
    lines += ranking_section(suite)
    lines += ["### Per set", ""]
    for name in sets:
        entry = suite["sets"][name]
        cols = [c for c in COLUMNS if any(c in r for r in entry["rows"])]
        lines += ["<details><summary>%s (%d samples, %.2f%% wrong labels)</summary>" %
                  (name, entry["n"], 100 * entry["noise_rate"]), "",
                  common.markdown_table(entry["rows"], cols), ""]
        if roc_plots and name in roc_plots:
            lines += ["![ROC %s](%s)" % (name, roc_plots[name]), ""]
        lines += ["</details>", ""]
    return lines


def _intro(suite):
    pairs = sorted({tuple(sorted(p)) for p in (suite.get("cifar10_pairs") or CIFAR10_PAIRS).items()})
    seeds = suite.get("injected_seeds") or INJECTED_SEEDS
    return (
        "Every detector runs through its operator with its defaults. Consensus (no verified): "
        "`find_label_issues(preset=\"fast\")` (kNN disagreement, `compute_label_quality`, Dupes, "
        "Deep Self-Learning, then `compute_noise_score`) before any sample is verified. Consensus "
        "(verified): `compute_noise_score` again on the same detector outputs with "
        "`verified_field=\"label_verified\"` after a fixed verified subset (100 samples per noisy "
        "class, seed 0) is recorded. Label quality: `label_quality` alone. cleanlab "
        "(`find_label_issues`, `get_label_quality_scores`) and FiftyOne `compute_mistakenness` "
        "use 5-fold CV logistic-regression probabilities of the same embeddings. CIFAR-10N sets: "
        "human labels, shared MobileNetV2 embeddings. `clean`, `unif`, `pair`: the same 50,000 "
        "CIFAR-10 images with their clean labels and an exact share flipped at random (seeds %s) "
        "to a uniformly drawn other class (`unif`) or to its pair class (`pair`: %s). "
        "Fashion-MNIST (`fm`): PCA-64 of the pixels, injected noise. Column `detectors`: on "
        "`fast + baselines` sets Training-ValueNet, CleanNet and SCAN did not run (time). An "
        "empty cell: not run or undefined."
        % (", ".join("%s %d" % kv for kv in sorted(seeds.items())),
           ", ".join("%s↔%s" % p for p in pairs))
    )


def _set_row(name, entry):
    return {"set": _label(name), "name": name, "samples": entry["n"], "wrong labels": entry.get(
        "num_wrong", round(entry["noise_rate"] * entry["n"])), "true rate": _pct(entry["noise_rate"]),
        "detectors": "all" if entry.get("all_detectors", True) else "fast + baselines",
        "set seconds": _secs(entry.get("seconds"))}


def _label(name):
    return SET_LABELS.get(name, name)


def _methods(suite):
    seen = list(HEADLINE)
    for entry in suite["sets"].values():
        seen += [r["method"] for r in entry["rows"] if r["method"] not in seen]
    return seen


def _row(entry, method):
    return next((r for r in entry["rows"] if r["method"] == method), None)


def _value(suite, name, method, key):
    r = _row(suite["sets"][name], method)
    return None if r is None else r.get(key)


def _metric_row(method, suite, sets, key, fmt):
    return dict({"method": method}, **{_label(s): fmt(_value(suite, s, method, key)) for s in sets})


def _delta_row(title, suite, sets, key):
    out = {"method": title}
    for s in sets:
        a, b = _value(suite, s, NO_VERIFIED, key), _value(suite, s, CLEANLAB, key)
        out[_label(s)] = "%+.3f" % (a - b) if a is not None and b is not None else ""
    return out


def _num(v):
    return "" if v is None else "%.3f" % v


def _pct(v):
    if v is None:
        return ""
    return "%.1f%%" % (100 * v) if abs(v) >= 0.1 else "%.2f%%" % (100 * v)


def _secs(v):
    return "" if v is None else "%.0f" % v if v >= 10 else "%.1f" % v


def _noise_rate_table(suite, sets):
    def row(title, method, key, fmt=_pct):
        return dict({"": title}, **{_label(s): fmt(_value(suite, s, method, key)) for s in sets})

    rows = [dict({"": "**true rate**"}, **{_label(s): _pct(suite["sets"][s]["noise_rate"]) for s in sets})]
    for method in (NO_VERIFIED, VERIFIED):
        rows += [row("%s: `noise_rate`" % method, method, "noise_rate_est"),
                 row("%s: share `noise_flagged`" % method, method, "flagged_share")]
        if method == NO_VERIFIED:
            rows += [row("— estimate `anchors`", method, "noise_rate_anchors"),
                     row("— estimate `confident_learning`", method, "noise_rate_cl")]
    rows += [row("cleanlab: share of `find_label_issues`", CLEANLAB, "flagged_share"),
             row("Label quality: share of its CL issues", LABEL_QUALITY, "flagged_share")]
    basis = dict({"": "basis of Consensus (verified)"},
                 **{_label(s): str(_value(suite, s, VERIFIED, "noise_rate_basis") or "") for s in sets})
    return ["### Estimated vs true noise rate", "",
            "`noise_rate` is the consensus summary's estimate of the share of wrong labels (without "
            "verified samples: the estimator it defaults to); `anchors` and `confident_learning` are "
            "both model-based estimates saved in the run results (`noise_estimate`). Targets (#17): "
            "within ±25% (relative) of the truth at ≥ 3% noise, within 1.5 points below; on the 1% "
            "sets `noise_flagged` marks ≤ 3% of the samples.", "",
            common.markdown_table(rows + [basis], [""] + [_label(s) for s in sets]), ""]


def _calibration_table(suite, sets):
    plots = reliability_plots(suite)
    rows = []
    for method in (NO_VERIFIED, VERIFIED):
        rows.append(dict({"": "%s: max \\|gap\\|" % method},
                         **{_label(s): _num(_value(suite, s, method, "calibration_max_gap")) for s in sets}))
        rows.append(dict({"": "%s: mean `noise_score`" % method},
                         **{_label(s): _pct(_value(suite, s, method, "mean_noise_score")) for s in sets}))
    rows.append(dict({"": "diagram (no verified)"},
                     **{_label(s): "[png](%s)" % plots[s] if s in plots else "" for s in sets}))
    lines = ["### Calibration of `noise_score`", "",
             "Reliability of `noise_score` read as the probability that the label is wrong: 10 "
             "equal bins on [0, 1]; gap = |mean score − share truly wrong| in a bin; max over the "
             "bins holding ≥ 50 samples (target #17: ≤ 0.1 on every set). Mean `noise_score` should "
             "match the estimated rate.", "",
             common.markdown_table(rows, [""] + [_label(s) for s in sets]), ""]
    if "_grid" in plots:
        lines += ["![reliability of noise_score, consensus without verified samples](%s)" % plots["_grid"], ""]
    return lines


def reliability_plots(suite, method=NO_VERIFIED):
    """One reliability PNG per set (and ``_grid``: all sets): {set: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.join(common.REPO, PLOTS), exist_ok=True)
    found = {s: e["calibration"][method] for s, e in suite["sets"].items()
             if (e.get("calibration") or {}).get(method)}
    out = {}
    for name, cal in found.items():
        fig, ax = plt.subplots(figsize=(5, 5))
        _draw_reliability(ax, name, cal, annotate=True)
        out[name] = "%s/reliability_%s.png" % (PLOTS, name)
        fig.savefig(os.path.join(common.REPO, out[name]), dpi=90, bbox_inches="tight")
        plt.close(fig)
    if found:
        cols = min(5, len(found))
        rows = -(-len(found) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
        for ax, (name, cal) in zip(axes.flat, found.items()):
            _draw_reliability(ax, _label(name), cal, annotate=False)
        for ax in list(axes.flat)[len(found):]:
            ax.axis("off")
        fig.tight_layout()
        out["_grid"] = "%s/reliability_all.png" % PLOTS
        fig.savefig(os.path.join(common.REPO, out["_grid"]), dpi=80, bbox_inches="tight")
        plt.close(fig)
    return out


def _draw_reliability(ax, title, cal, annotate):
    bins = [b for b in cal["bins"] if b["count"]]
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    big = [b for b in bins if b["count"] >= cal["min_count"]]
    small = [b for b in bins if b["count"] < cal["min_count"]]
    ax.plot([b["predicted"] for b in big], [b["observed"] for b in big], "o-", color="C0",
            label="bins ≥ %d samples" % cal["min_count"])
    if small:
        ax.plot([b["predicted"] for b in small], [b["observed"] for b in small], "o", color="C0",
                mfc="none", label="smaller bins")
    if annotate:
        for b in bins:
            ax.annotate(str(b["count"]), (b["predicted"], b["observed"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
        ax.legend(fontsize=7, loc="upper left")
    gap = cal.get("max_gap")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean noise_score in bin", ylabel="share truly wrong",
           title="%s (max gap %s)" % (title, "–" if gap is None else "%.2f" % gap))
    ax.title.set_fontsize(9)


#: the sets of the nearly-clean table (#29), in this order, where present
RANKING_SETS = ("cifar10n-unanimous-5k", "cifar10n-unanimous-10k", "cifar10n-unanimous",
                "cifar10-uniform-1-10k", "cifar10-uniform-1", "cifar10-pair-1", "cifar10-pair-3",
                "cifar10n-random1", "fmnist-asym-40")


def ranking_section(suite):
    """``### Nearly clean data`` (issue #29) when the unanimous sets were run."""
    if not any(name in suite["sets"] for name in RANKING_SETS[:3]):
        return []
    sets = {name: suite["sets"][name] for name in RANKING_SETS if name in suite["sets"]}
    return ["### Nearly clean data: the default ranking vs its own self-confidence", "",
            "Consensus = `noise_score` of `find_label_issues(preset=\"fast\")` without verified "
            "samples; label quality = its `label_quality` alone (self-confidence); cleanlab = "
            "`get_label_quality_scores` on 5-fold scikit-learn logistic-regression (C=0.1) "
            "probabilities of the same embeddings. P@K: precision in the top K, K = the true "
            "number of wrong labels. Estimated rate = the summary's `noise_rate`; "
            "`noise_flagged` = share flagged. Unanimous sets: the CIFAR-10N images whose three "
            "annotators agree (truth: `clean`); `unif 1% 10k`: 10,000 of `cifar10-uniform-1`.",
            ""] + ranking_table(dict(suite, sets=sets))


def ranking_table(suite):
    """The consensus (no verified) against label quality's self-confidence and
    cleanlab on the same sets, with its count (issue #29): markdown lines."""
    rows = []
    for name, entry in suite["sets"].items():
        get = lambda method, key: _value(suite, name, method, key)  # noqa: E731
        true = entry["noise_rate"]
        flagged = get(NO_VERIFIED, "flagged_share")
        rows.append({
            "set": _label(name), "samples": entry["n"], "wrong": entry.get("num_wrong"),
            "true rate": _pct(true),
            "AUROC consensus": _num(get(NO_VERIFIED, "auroc")),
            "AUROC label quality": _num(get(LABEL_QUALITY, "auroc")),
            "AUROC cleanlab": _num(get(CLEANLAB, "auroc")),
            "P@K consensus": _num(get(NO_VERIFIED, "precision_at_k")),
            "P@K label quality": _num(get(LABEL_QUALITY, "precision_at_k")),
            "P@K cleanlab": _num(get(CLEANLAB, "precision_at_k")),
            "estimated rate": _pct(get(NO_VERIFIED, "noise_rate_est")),
            "noise_flagged": _pct(flagged),
            "flagged / true": "" if flagged is None or not true else "%.2f" % (flagged / true),
        })
    return [common.markdown_table(rows), ""]


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="markdown tables of one suite result file")
    parser.add_argument("path", help="e.g. benchmarks/results/suite_ranking.json")
    parser.add_argument("--ranking", action="store_true", help="only the #29 ranking/count table")
    args = parser.parse_args()
    found = json.load(open(args.path))
    print("\n".join(ranking_section(found) if args.ranking else section(found)))
