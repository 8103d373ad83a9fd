"""Neighbour search: faiss index choices, measured side by side (k=10, cosine).

    .venv/bin/python benchmarks/bench_neighbours.py            # 200k sweep + 1M
    .venv/bin/python benchmarks/bench_neighbours.py --quick    # 50k sweep only

For each data set the rows are L2-normalised, the exact 10 nearest
neighbours of ``--queries`` random rows (50,000) are found by brute force
over all rows, and each index is timed on a full k=10 search of every row
(build + search, 2 threads here) with its recall@10 on those query rows:

- ``flat``: exact brute force (``IndexFlatIP``; above 200k rows its time is
  extrapolated from the query rows' search, marked ``~``);
- ``ivf-flat``: ``IndexIVFFlat`` with ``2 sqrt(n)`` cells, nprobe swept;
- ``ivf-sq8``: the same cells, vectors scalar-quantised to 8 bits, and
  ``auto``: :func:`methods.neighbours.cosine_neighbours` as the detectors run
  it (IVF-SQ8 picking 2k candidates, re-scored exactly; nprobe chosen for
  recall 0.95 on 1,000 rows);
- ``ivf-pq``: product quantisation (32 bytes a vector) with a flat re-rank of
  the top 4k;
- ``hnsw``: ``IndexHNSWFlat`` (M=32, efConstruction 40), efSearch swept
  (up to 200k rows; as fast as IVF-SQ8 there, but its multi-threaded build
  is not deterministic, so the detectors do not use it).

At 1M rows only the detectors' search runs (and exact search on the query
rows): the sweep's relative costs were measured at 200k.

Data sets: the CIFAR-10 MobileNetV2 embeddings (50,000 x 256, when
``../shared/data`` is present: real image embeddings), and Gaussian data
of 10 classes, each spread over its own 16-d subspace (``tests/synthetic.py``,
the scale benchmark's data) at 200,000 and 1,000,000 rows; also 200,000 rows
of one isotropic blob per class (the worst case for any index: neighbours
carry no structure below the class). Writes ``benchmarks/results/neighbours.json``
and prints a markdown table.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import numpy as np  # noqa: E402

K = 10


def cifar():
    path = os.path.join(common.SHARED, "cifar10-embeddings", "train_mobilenetv2.npz")
    if not os.path.exists(path):
        return None
    return np.load(path)["embeddings"].astype(np.float32)


def synthetic(n, latent, seed=0):
    from synthetic import blob_centers, class_subspaces, gaussian_blobs

    centers = blob_centers(256, 10, seed)
    subspaces = class_subspaces(256, 10, latent, seed) if latent else None
    parts = []
    for start in range(0, n, 100_000):
        x, _, _ = gaussian_blobs(min(100_000, n - start), 256, 10, 0.1, seed=seed + start,
                                 spread=0.2 if latent else 0.6, centers=centers,
                                 subspaces=subspaces)
        parts.append(x)
    return np.concatenate(parts)


def search_all(index, x, batch=16384):
    """The K nearest of every row, itself excluded (as the detectors do)."""
    from methods.neighbours import without_self

    out = np.empty((len(x), K), np.int64)
    for s in range(0, len(x), batch):
        rows = np.arange(s, min(s + batch, len(x)))
        out[s:s + batch] = without_self(index, x[rows], rows, K)
    return out


def run_set(name, x, queries, rows, sweep):
    import faiss
    from methods.neighbours import cosine_neighbours, recall_at_k, without_self

    n, d = x.shape
    q = np.sort(np.random.default_rng(0).choice(n, min(queries, n), replace=False))
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    with common.Timer() as t:
        truth = without_self(flat, x[q], q, K)
    del flat
    base = dict(set=name, rows=n, queries=len(q))
    rows.append(dict(base, index="flat", params="exact", seconds=("~%.0f" % (t.seconds * n / len(q))) if len(q) < n else round(t.seconds, 1), recall=1.0))
    print(rows[-1], flush=True)

    def add(index_name, params, seconds, found_all):
        rows.append(dict(base, index=index_name, params=params, seconds=round(seconds, 1),
                         recall=round(recall_at_k(found_all[q], truth), 4)))
        print(rows[-1], flush=True)

    info = {}
    with common.Timer() as t:
        got = cosine_neighbours(x, K, exact=False, info=info)
    add("ivf-sq8 auto (detectors)", "nlist %d, nprobe %d (recall on 1,000 rows %.3f)"
        % (info["nlist"], info["nprobe"], info["recall_at_k"]), t.seconds, got)
    if not sweep:
        return
    def trained(index):
        index.train(x[np.sort(np.random.default_rng(0).choice(n, min(n, 64 * index.nlist), replace=False))])
        index.add(x)
        return index

    def sweep(name, index, build_seconds, nprobes):
        for nprobe in nprobes:
            index.nprobe = nprobe
            with common.Timer() as t:
                found = search_all(index, x)
            add(name, "nlist %d, nprobe %d" % (index.nlist, nprobe), build_seconds + t.seconds, found)

    nlist = int(round(2 * np.sqrt(n)))
    with common.Timer() as t_build:
        ivf = trained(faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT))
    sweep("ivf-flat", ivf, t_build.seconds, (8, 16, 32, 64))
    del ivf
    with common.Timer() as t_build:
        sq = trained(faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist,
                                                   faiss.ScalarQuantizer.QT_8bit,
                                                   faiss.METRIC_INNER_PRODUCT))
    sweep("ivf-sq8", sq, t_build.seconds, (16, 32))
    del sq
    with common.Timer() as t_build:
        quant = faiss.IndexFlatIP(d)
        pq = faiss.IndexIVFPQ(quant, d, int(round(2 * np.sqrt(n))), 32, 8, faiss.METRIC_INNER_PRODUCT)
        pq.train(x[np.sort(np.random.default_rng(0).choice(n, min(n, 64 * pq.nlist), replace=False))])
        refine = faiss.IndexRefineFlat(pq)
        refine.add(x)
        refine.k_factor = 4
    for nprobe in (16, 32):
        pq.nprobe = nprobe
        with common.Timer() as t:
            got = search_all(refine, x)
        add("ivf-pq + re-rank", "nlist %d, nprobe %d, 32 B, k_factor 4" % (pq.nlist, nprobe),
            t_build.seconds + t.seconds, got)
    del refine, pq
    if n <= 200_000:
        with common.Timer() as t_build:
            hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = 40
            hnsw.add(x)
        for ef in (32, 64):
            hnsw.hnsw.efSearch = ef
            with common.Timer() as t:
                got = search_all(hnsw, x)
            add("hnsw", "M 32, efSearch %d (build %.0f s)" % (ef, t_build.seconds),
                t_build.seconds + t.seconds, got)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CIFAR-10 50k only")
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    import faiss

    sys.path.insert(0, os.path.dirname(HERE))
    rows = []
    real = cifar()
    if real is not None:
        faiss.normalize_L2(real)
        run_set("cifar10 mobilenetv2", real, args.queries, rows, sweep=True)
    if not args.quick:
        for name, n, latent in (("gaussian, 16-d classes", 200_000, 16),
                                ("gaussian, isotropic classes", 200_000, 0),
                                ("gaussian, 16-d classes", args.n, 16)):
            x = synthetic(n, latent)
            faiss.normalize_L2(x)
            run_set(name, x, args.queries, rows, sweep=n <= 200_000)
            del x
    payload = {"machine": common.machine(), "k": K, "rows": rows}
    common.save("neighbours_quick" if args.quick else "neighbours", payload)
    print(common.markdown_table(rows, ["set", "rows", "index", "params", "seconds", "recall", "queries"]))


if __name__ == "__main__":
    main()
