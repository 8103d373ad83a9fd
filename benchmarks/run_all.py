"""`make bench*`: run the benchmarks, write BENCHMARKS.md.

Each benchmark runs in its own process (each starts its own private
database).

- ``--quick`` (``make bench-quick``): the suite on a 3,000-sample subset
  and the scaling sweep on small sizes, so the harness cannot rot (~5 min);
- default (``make bench``): the full suite (every set and column of
  ``bench_suite.py``), the scaling sweep and the object benchmark (target
  ~75 min on 2 cores);
- ``--scale`` (``make bench-scale``): the 1,000,000-sample job
  (``find_label_issues``, per step read/compute/write and peak RSS), the
  neighbour-search choices and recall, the read/write paths (~65 min);
- ``--methods`` (``make bench-methods``): each method's own benchmark
  (ablations and parameter sweeps);
- ``--all`` (``make bench-all``): all three.

Every run except ``--quick`` ends by rewriting BENCHMARKS.md from the JSON
files in ``benchmarks/results/``.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)


def run(script, *args):
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    print("\n$ " + " ".join(os.path.relpath(c, REPO) if c.startswith(REPO) else c for c in cmd), flush=True)
    started = time.time()
    code = subprocess.call(cmd, cwd=REPO)
    print("(%s: exit %d, %.0f s)" % (script, code, time.time() - started), flush=True)
    return code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000-sample subsets (~10 min)")
    parser.add_argument("--scale", action="store_true", help="only the 1M-sample test")
    parser.add_argument("--methods", action="store_true", help="only the per-method benchmarks")
    parser.add_argument("--all", action="store_true", help="suite, scaling, 1M test, per-method")
    args = parser.parse_args()
    if args.quick:
        jobs = [("bench_suite.py", ["--quick"]), ("bench_scaling.py", ["--quick"])]
    else:
        main_jobs = [("bench_suite.py", []), ("bench_scaling.py", []), ("bench_objects.py", []), ("bench_issue_types.py", []),
                     ("bench_predictions.py", [])]
        scale_jobs = [("bench_scale.py", []), ("bench_neighbours.py", []), ("bench_io.py", []),
                      ("bench_predictions.py", ["--scale"])]
        method_jobs = [
            (os.path.basename(p), []) for p in sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
            if os.path.basename(p) not in ("bench_suite.py", "bench_scaling.py", "bench_scale.py",
                                           "bench_objects.py", "bench_neighbours.py", "bench_io.py", "bench_issue_types.py",
                                           "bench_predictions.py")
        ]
        if args.all:
            jobs = main_jobs + scale_jobs + method_jobs
        else:
            jobs = (scale_jobs if args.scale else []) + (method_jobs if args.methods else [])
            jobs = jobs or main_jobs
    started = time.time()
    failures = [script for script, extra in jobs if run(script, *extra)]
    print("(all: %.1f min)" % ((time.time() - started) / 60), flush=True)
    if not args.quick:
        write_report()
    if failures:
        sys.exit("benchmarks failed: %s" % ", ".join(failures))


def write_report():
    """BENCHMARKS.md from the JSON files in benchmarks/results/."""
    import common

    lines = ["# Benchmarks", "",
             "Produced by `make bench` (`python benchmarks/run_all.py`); raw figures in "
             "`benchmarks/results/*.json`. Every detector runs through its public operator "
             "on a private MongoDB with its defaults; baselines run on the same embeddings.", ""]
    notes = os.path.join(HERE, "RUN_NOTES.md")
    if os.path.exists(notes):  # what the last full run did and did not cover
        lines += [open(notes).read().strip(), ""]
    suite = _merged_suites()
    if suite:
        m = suite["machine"]
        lines += ["Machine: %s, %s cores, Python %s, torch %s (%s threads), run %s." %
                  (m["cpu"], m["cores"], m["python"], m["torch"], m["torch_threads"], m["date"]), ""]
        from suite_report import section

        lines += section(suite, _roc_plots(suite))
    scaling = _load("scaling")
    if scaling:
        lines += ["## Scaling (synthetic blobs, 256-d)", "",
                  "Seconds per detector run through its operator (defaults), N samples with 10 "
                  "classes, and K classes with N = 10,000; `exp` = fitted exponent b of "
                  "time ~ a·x^b. A method's larger sizes are skipped once one run exceeds the "
                  "budget. Run %s." % (scaling.get("machine") or {}).get("date", "?"), "",
                  common.markdown_table(scaling["rows"]), ""]
        plot = _scaling_plot(scaling)
        if plot:
            lines += ["![scaling](%s)" % plot, ""]
    for name, flag, data in (("scale", "--detectors", "one isotropic Gaussian blob per class"),
                             ("scale_subspaces", "--detectors --subspaces",
                              "Gaussian classes on 16-d subspaces, the pipeline's data")):
        scale = _load(name)
        if not scale:
            continue
        lines += ["## Scale: %s samples x %d-d, %d classes, each detector alone (`bench_scale.py %s`)" %
                  ("{:,}".format(scale["n"]), scale["dim"], scale["classes"], flag), "",
                  "Synthetic data (%s, 10%% flipped labels) inserted into the database "
                  "in %.0f s; each detector runs through its operator with its defaults in its "
                  "own process (peak RSS = that process's maximum resident set), limit %.0f GiB; "
                  "`measured`: when each row was run (`--only` re-runs some rows)."
                  % (data, scale["insert_seconds"], scale["rss_limit_gib"]), "",
                  common.markdown_table(scale["rows"], ["detector", "status", "seconds", "peak_rss_gib",
                                                        "rss_ok", "all_written", "auroc", "load_1min",
                                                        "measured", "note"]), ""]
    pipeline = _load("scale_pipeline")
    if pipeline:
        lines += _pipeline_section(pipeline)
    neighbours = _load("neighbours")
    if neighbours:
        lines += ["## Neighbour search: faiss choices, k=10 (`bench_neighbours.py`)", "",
                  "Seconds for a full k=10 search of every row (index build included, 2 cores), "
                  "recall@10 against exact search on `queries` random rows. `ivf-sq8 auto (detectors)` "
                  "is what the detectors run: IVF-SQ8 taking 2k candidates re-scored exactly, with the "
                  "smallest nprobe whose recall on 1,000 rows reaches 0.95; the `ivf-sq8` rows are the "
                  "codes alone, without re-scoring. "
                  "`~` = extrapolated from the query rows' exact search. Run %s."
                  % neighbours["machine"]["date"], "",
                  common.markdown_table(neighbours["rows"], ["set", "rows", "index", "params",
                                                             "seconds", "recall", "queries"]), ""]
    io = _load("io")
    if io:
        lines += ["## Reading and writing %s samples (`bench_io.py`)" % "{:,}".format(io["n"]), "",
                  "ids + labels + 256-d embeddings read into one float32 matrix, and three output "
                  "fields written to every sample, by FiftyOne's calls and by the plugin's bulk "
                  "path (`operators/bulk.py`); `same_values`: both give the same values. Run %s."
                  % io["machine"]["date"], "",
                  common.markdown_table(io["rows"], ["op", "storage", "path", "seconds",
                                                     "same_values", "peak_rss_gib"]), ""]
    objects = _load("objects")
    if objects:
        from bench_objects import SECTION_TITLE, section

        lines += [SECTION_TITLE, "", section(objects), ""]
    predictions = _load("predictions")
    if predictions:
        from bench_predictions import section as predictions_section

        lines += predictions_section(predictions)
    review = _load("review")
    if review:
        from bench_review import SECTION_TITLE as REVIEW_TITLE, section as review_section

        lines += [REVIEW_TITLE, "", review_section(review), ""]
    issue_types = _load("issue_types")
    if issue_types:
        from bench_issue_types import section as issue_types_section

        lines += [issue_types_section(issue_types), ""]
    lines += ["## Per-method benchmarks", "",
              "Each method's own script (`benchmarks/bench_<method>.py`); see the method's page "
              "in `docs/` for what every column means.", ""]
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if (name.startswith(("suite", "scaling", "objects", "review", "scale", "neighbours", "issue_types",
                             "predictions"))
                or name in ("io",) or name.endswith("_quick")):
            continue
        data = json.load(open(path))
        tables = [(k, v) for k, v in data.items()
                  if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if not tables:
            continue
        when = (data.get("machine") or {}).get("date") or data.get("when", "")
        lines += ["### %s%s" % (name, " (%s)" % when if when else ""), ""]
        for key, rows in tables:
            rows = [_flat_row(r) for r in rows]
            columns = list(dict.fromkeys(c for r in rows for c in r))
            lines += ["%s:" % key, "", common.markdown_table(rows, columns), ""]
    lines += ["Reproduce: `make bench` (suite, scaling and objects, about 75 min on 2 cores), "
              "`make bench-scale` (1M samples), `make bench-methods` (per-method), "
              "`make bench-all` (all three) or `make bench-quick` (3,000-sample subsets).", ""]
    with open(os.path.join(REPO, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines))
    print("wrote BENCHMARKS.md")


def _pipeline_section(data):
    import common

    summary = data["summary"]
    rows = [dict(r, search=_search_note(r.get("search"))) for r in data["rows"]]
    return [
        "## One million samples end to end (`make bench-scale`)", "",
        "`find_label_issues` with the `fast` preset on %s samples x %d-d (%d classes, each "
        "spread over a %d-d subspace, 10%% flipped labels), run immediately in one process, "
        "every sample written; inserted in %.0f s. Per step: wall seconds split into reading "
        "inputs, computing and writing outputs; peak RSS of the process by the end of the step. "
        "Run %s." % ("{:,}".format(data["n"]), data["dim"], data["classes"], data["latent_dim"],
                     data["insert_seconds"], data["machine"]["date"]), "",
        common.markdown_table(rows, ["step", "seconds", "read_s", "compute_s", "write_s",
                                     "peak_rss_gib", "written", "search"]), "",
        "Total %.0f s (target %d s), peak RSS %.2f GiB (limit %.0f GiB); noise score AUROC %.4f "
        "against the injected flips; estimated noise rate %.2f%% (%s) vs %.2f%% true; every "
        "sample written: %s." % (summary["seconds"], data["target_seconds"], summary["peak_rss_gib"],
                                 data["rss_limit_gib"], summary["auroc"], 100 * summary["noise_rate"],
                                 summary["noise_rate_basis"], 100 * summary["true_rate"],
                                 summary["all_written"]), "",
    ]


def _search_note(search):
    if not search:
        return ""
    if search.get("method") != "ivf":
        return search.get("method", "")
    # k: the depth searched (the chain shares one 40-deep graph)
    return "IVF-SQ8 %d cells, nprobe %d, recall@%s %.3f on %d rows" % (
        search["nlist"], search["nprobe"], search.get("k", 40), search["recall_at_k"] or 0,
        search["recall_queries"])


def _flat_row(row):
    """Nested metric dicts become ``<key> <metric>`` columns; lists (per-epoch
    histories) stay in the JSON only."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(("%s %s" % (key, k), v) for k, v in value.items() if not isinstance(v, (dict, list)))
        elif not isinstance(value, list):
            flat[key] = value
    return flat


def _merged_suites():
    """All full-suite result files (suite.json, suite_<tag>.json) as one."""
    merged = None
    for path in sorted(glob.glob(os.path.join(RESULTS, "suite*.json"))):
        if os.path.basename(path) == "suite_quick.json":
            continue
        data = json.load(open(path))
        if merged is None:
            merged = {"machine": data["machine"], "sets": {}}
        merged.update((k, v) for k, v in data.items() if k not in ("machine", "sets", "quick"))
        for name, entry in data["sets"].items():  # a later file adds/replaces rows by method
            if name not in merged["sets"]:
                merged["sets"][name] = entry
                continue
            old = merged["sets"][name]
            new_methods = {r["method"] for r in entry["rows"]}
            old["rows"] = [r for r in old["rows"] if r["method"] not in new_methods] + entry["rows"]
            old.setdefault("roc", {}).update(entry.get("roc", {}))
            old.setdefault("calibration", {}).update(entry.get("calibration", {}))
    return merged


def _load(name):
    path = os.path.join(RESULTS, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def _roc_plots(suite):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    os.makedirs(os.path.join(RESULTS, "plots"), exist_ok=True)
    for name, entry in suite["sets"].items():
        if not entry.get("roc"):
            continue
        fig, ax = plt.subplots(figsize=(5, 5))
        for method, (fpr, tpr) in entry.get("roc", {}).items():
            ax.plot(fpr, tpr, label=method)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=name)
        ax.legend(fontsize=7)
        rel = "benchmarks/results/plots/roc_%s.png" % name
        fig.savefig(os.path.join(REPO, rel), dpi=90, bbox_inches="tight")
        plt.close(fig)
        out[name] = rel
    return out


def _scaling_plot(scaling):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for op, points in scaling["by_n"].items():
        if points:
            axes[0].loglog([int(k) for k in points], list(points.values()), "o-", label=op)
    for op, points in scaling["by_k"].items():
        if points:
            axes[1].loglog([int(k) for k in points], list(points.values()), "o-", label=op)
    axes[0].set(xlabel="samples", ylabel="seconds", title="time vs N (10 classes)")
    axes[1].set(xlabel="classes", ylabel="seconds", title="time vs classes (N=10,000)")
    axes[0].legend(fontsize=7)
    rel = "benchmarks/results/plots/scaling.png"
    os.makedirs(os.path.join(RESULTS, "plots"), exist_ok=True)
    fig.savefig(os.path.join(REPO, rel), dpi=90, bbox_inches="tight")
    plt.close(fig)
    return rel


if __name__ == "__main__":
    main()
