"""Benchmark: Training-ValueNet on CIFAR-10N (shared MobileNetV2 embeddings).

Usage: .venv/bin/python benchmarks/bench_training_value.py [--quick]

Measures, in one run:

1. fast vs literal Monte Carlo on the same 10-episode job (10 classes, 1000
   training / 100 validation samples per class, 100 hidden units): the fast
   path runs the whole job; the literal reference is timed on the first
   ``LITERAL_STEPS`` steps of one episode and extrapolated linearly (its cost
   per step is constant: one forward/backward and one full validation pass);
   both are also checked to agree on that prefix;
2. the full run with the paper's defaults (M = 100) on the ``worst`` label
   set, 50,000 samples, verified_subset() (100 per class, clean labels) as
   the validation set; AUROC / F1 (negative value = noisy) next to kNN
   disagreement; the same for ``random1`` (fewer episodes, stated);
3. cost vs number of classes K (10, 20, 50, 100; synthetic 256-d Gaussian
   classes, 100 training and 100 validation samples per class): time per
   step measured on a prefix and extrapolated to M = 100 episodes, for the
   default MLP (100 hidden units) and for softmax regression
   (hidden_units=0).

Torch runs with one intra-op thread: on this shared 2-core machine, two
OpenMP threads per op made the many small per-step ops 10-20x slower under
the concurrent load of other jobs.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402

LITERAL_STEPS = 300


class Timer(common.Timer):
    """Wall and CPU seconds (CPU time shows the cost without the load of
    other processes on a shared machine)."""

    def __enter__(self):
        self.cpu_start = time.process_time()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.cpu_seconds = time.process_time() - self.cpu_start


def standardized(x):
    from methods.training_value import normaliser

    mean, scale = normaliser(x, True)
    return (x - mean) / scale


def speedup(data, quick):
    import methods.training_value as tv

    rng = np.random.default_rng(0)
    per_class = 100 if quick else 1000
    steps_literal = 60 if quick else LITERAL_STEPS
    episodes = 2 if quick else 10
    x = standardized(data["x"])
    y = data["noisy"]
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), train)
    val = np.concatenate([rng.choice(rest[data["clean"][rest] == c], 100, replace=False) for c in range(10)])
    args = (x[train], y[train], x[val], data["clean"][val], 10)
    with Timer() as fast_t:
        fast, _, fast_steps = tv.monte_carlo_estimates(
            *args, episodes=episodes, episode_batch=episodes, seed=0, device="cpu", return_steps=True
        )
    with Timer() as lit_t:
        _, _, lit_steps = tv.monte_carlo_literal(
            *args, episodes=1, seed=0, max_steps=steps_literal, return_steps=True
        )
    total_steps = episodes * len(train)
    literal_full = lit_t.seconds / steps_literal * total_steps
    diff = float(np.abs(fast_steps[0, :steps_literal] - lit_steps[0]).max())
    return {
        "job": "%d episodes x %d steps (K=10, n_val=1000, h=100)" % (episodes, len(train)),
        "fast_seconds": fast_t.seconds,
        "fast_cpu_seconds": fast_t.cpu_seconds,
        "literal_cpu_seconds_extrapolated": lit_t.cpu_seconds / steps_literal * total_steps,
        "literal_seconds_measured": lit_t.seconds,
        "literal_steps_measured": steps_literal,
        "literal_seconds_extrapolated": literal_full,
        "speedup": literal_full / fast_t.seconds,
        "max_abs_step_diff": diff,
        "mean_abs_step_improvement": float(np.abs(lit_steps).mean()),
    }


def quality(label_set, params, quick):
    from methods.knn_disagreement import knn_disagreement
    from methods.training_value import training_value

    data = common.cifar10n(label_set, limit=5000 if quick else None)
    picked, _ = common.verified_subset(data["noisy"], data["clean"], per_class=50 if quick else 100)
    val = np.zeros(len(data["noisy"]), bool)
    val[picked] = True
    labels = np.where(val, data["clean"], data["noisy"])  # verified = corrected
    with Timer() as t:
        out = training_value(data["x"], labels, val, seed=0, device="cpu", **params)
    value = out["value"]
    rows = ~val
    tv_scores = common.detection_scores(data["is_noisy"][rows], -value[rows], value[rows] < 0)
    knn = knn_disagreement(data["x"], labels, k=10)["score"]
    knn_scores = common.detection_scores(data["is_noisy"][rows], knn[rows], knn[rows] > 0.5)
    drawn = ~np.isnan(out["direct_estimate"])
    direct = common.detection_scores(
        data["is_noisy"][drawn], -out["direct_estimate"][drawn], out["direct_estimate"][drawn] < 0
    )
    return {
        "label_set": label_set,
        "samples": int(len(labels)),
        "noise_rate": float(data["is_noisy"][rows].mean()),
        "episodes": params.get("episodes", 100),
        "seconds": t.seconds,
        "cpu_seconds": t.cpu_seconds,
        "mc_seconds": out["stats"]["mc_seconds"],
        "training_value": tv_scores,
        "direct_estimates_on_subset": direct,
        "knn_disagreement": knn_scores,
    }


def k_scaling(quick):
    import methods.training_value as tv

    rows = []
    ks = (10, 20) if quick else (10, 20, 50, 100)
    steps = 20 if quick else 100
    episodes, per_class, d = 10, 100, 256
    for k in ks:
        rng = np.random.default_rng(k)
        centres = rng.normal(size=(k, d))
        y = np.repeat(np.arange(k), per_class)
        x = (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32)
        xv = (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32)
        for hidden in (100, 0):
            # time `steps` steps of an `episodes`-episode batch: a training
            # subset of `steps` samples gives exactly `steps` steps per
            # episode with the full validation set (cost/step depends on
            # n_val, h, K, not on the subset size)
            sub = rng.choice(len(y), steps, replace=False)
            with Timer() as t:
                tv.monte_carlo_estimates(
                    x[sub], y[sub], xv, y, k, episodes=episodes, episode_batch=episodes,
                    hidden_units=hidden, seed=0, device="cpu",
                )
            per_step = t.cpu_seconds / (steps * episodes)
            full_steps = 100 * k * per_class  # M=100 episodes x K*100 steps
            rows.append({
                "K": k,
                "hidden_units": hidden,
                "n_val": k * per_class,
                "cpu_ms_per_episode_step": 1000 * per_step,
                "wall_ms_per_episode_step": 1000 * t.seconds / (steps * episodes),
                "extrapolated_full_cpu_minutes": per_step * full_steps / 60,
            })
            print("K=%d h=%d: %.3f CPU ms/episode-step" % (k, hidden, 1000 * per_step), flush=True)
    return rows


def main():
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--part", default="all", choices=("all", "scaling"),
        help="scaling: only the K-scaling table (results/training_value_scaling.json)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    quick = args.quick
    if args.part == "scaling":
        scaling = k_scaling(quick)
        print(common.markdown_table(scaling))
        print(common.save("training_value_scaling", dict(k_scaling=scaling, load_average=os.getloadavg())))
        return

    data = common.cifar10n("worst", limit=20000 if not quick else 5000)
    speed = speedup(data, quick)
    print("speed-up:", speed, flush=True)

    if quick:
        params = dict(episodes=3, train_per_class=100, val_per_class=50, regressor_epochs=60,
                      regressor_patience=10)
        runs = [quality("worst", params, True), quality("random1", params, True)]
    else:
        runs = [quality("worst", {}, False)]
        print("worst:", runs[-1]["seconds"], flush=True)
        runs.append(quality("random1", dict(episodes=20), False))
    scaling = k_scaling(quick)

    quality_rows = []
    for r in runs:
        for name in ("training_value", "knn_disagreement"):
            s = r[name]
            quality_rows.append({
                "label set": r["label_set"],
                "method": name + (" (M=%d)" % r["episodes"] if name == "training_value" else " (k=10)"),
                "noise": r["noise_rate"],
                "AUROC": s["auroc"],
                "AUPRC": s["auprc"],
                "F1": s["f1"],
                "precision": s["precision"],
                "recall": s["recall"],
                "seconds": r["seconds"] if name == "training_value" else "",
            })
    print("\n## Training-ValueNet%s\n" % (" (quick)" if quick else ""))
    print(("Quick run (M=3, 100/50 per class)" if quick else
           "Full run, defaults (M=100, 1000/100 per class, h=100)") +
          ", `worst`, %d samples: %.0f s wall, "
          "%.0f s CPU (Monte Carlo %.0f s wall)\n" % (runs[0]["samples"], runs[0]["seconds"],
                                                    runs[0]["cpu_seconds"], runs[0]["mc_seconds"]))
    print(common.markdown_table(quality_rows))
    print("\nFast vs literal on the same job (%s): fast %.1f s (%.1f s CPU), literal %.1f s (%.1f s "
          "CPU; extrapolated from %d measured steps, %.1f s), speed-up %.0fx wall, %.0fx CPU; max "
          "|step difference| %.2g (mean |step| %.2g)\n"
          % (speed["job"], speed["fast_seconds"], speed["fast_cpu_seconds"],
             speed["literal_seconds_extrapolated"], speed["literal_cpu_seconds_extrapolated"],
             speed["literal_steps_measured"], speed["literal_seconds_measured"], speed["speedup"],
             speed["literal_cpu_seconds_extrapolated"] / speed["fast_cpu_seconds"],
             speed["max_abs_step_diff"], speed["mean_abs_step_improvement"]))
    print(common.markdown_table(scaling))
    path = common.save(
        "training_value" + ("_quick" if quick else ""),
        dict(speedup=speed, quality=runs, k_scaling=scaling, quick=quick,
             wall_seconds=time.time() - started,
             load_average=os.getloadavg()),
    )
    print("\nwall %.0f s, load average %s; wrote %s" % (time.time() - started, os.getloadavg(), path))


if __name__ == "__main__":
    main()
