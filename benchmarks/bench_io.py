"""Reading and writing sample columns at scale: FiftyOne's calls vs the plugin's bulk path.

    .venv/bin/python benchmarks/bench_io.py             # 1,000,000 x 256-d
    .venv/bin/python benchmarks/bench_io.py --n 200000

A private mongod; N samples with a label and a 256-d embedding stored two
ways: a ``VectorField`` (what ``compute_embeddings`` and the zoo write:
compressed ``.npy`` bytes) and a list of floats (``ListField``, what a user's
own ``set_values(..., list)`` gives). Reads of ids + labels + embeddings
into one float32 matrix:

- ``values() batched``: ``view.skip(i).limit(50000).values(...)`` per batch
  (the plugin's reader before this benchmark; one ``values()`` of all 1M
  vectors builds 256M Python floats, ~10 GB, and is only run up to 200k);
- ``values() at once`` (n <= 200,000 only);
- ``cursor``: :func:`store.bulk.read_columns_uncached`, one aggregation
  cursor with a projection, vectors decoded straight into the matrix.

Writes of three output fields (a float, a bool, a ``Classification``) to
every sample: ``set_values`` (one call per field, keyed by id) against
:func:`store.bulk.write_sample_fields` (bulk insert into a side
collection, one ``$merge``). Every path is checked to give the same values.
Writes ``benchmarks/results/io.json`` and prints a markdown table.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import numpy as np  # noqa: E402


def batched_values(view, field, batch=50_000):
    ids, labels, blocks = [], [], []
    start = 0
    while True:
        i, l, e = view.skip(start).limit(batch).values(["id", "ground_truth.label", field])
        ids += i
        labels += l
        if e:
            blocks.append(np.stack([np.asarray(v, np.float32) for v in e]))
        if len(i) < batch:
            break
        start += batch
    return ids, labels, np.concatenate(blocks)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.n

    mongo = common.private_database()
    import fiftyone as fo
    from synthetic import insert_blob_samples
    from store import bulk

    ds = fo.Dataset("io-%d" % n, persistent=True, overwrite=True)
    with common.Timer() as t_insert:
        insert_blob_samples(ds, n, dim=256, num_classes=10, seed=0, batch_size=10000)
    print("inserted %d in %.0f s" % (n, t_insert.seconds), flush=True)
    # the same vectors as lists of floats, written server-side
    with common.Timer() as t_list:
        ds._sample_collection.update_many({}, [{"$set": {"emb_list": {"$literal": []}}}])
        reference = bulk.read_columns_uncached(ds, ["id"], "embeddings")[1]
        ids = ds.values("id")
        from bson import ObjectId
        from pymongo import UpdateOne

        for s in range(0, n, 50_000):
            ds._sample_collection.bulk_write([
                UpdateOne({"_id": ObjectId(i)}, {"$set": {"emb_list": v.astype(float).tolist()}})
                for i, v in zip(ids[s:s + 50_000], reference[s:s + 50_000])
            ], ordered=False)
        ds.add_sample_field("emb_list", fo.ListField, subfield=fo.FloatField)
    print("list field written in %.0f s" % t_list.seconds, flush=True)

    rows = []
    for field, storage in (("embeddings", "VectorField (npy bytes)"), ("emb_list", "list of floats")):
        paths = [("values() batched", lambda: batched_values(ds, field)),
                 ("cursor (plugin)", lambda: bulk.read_columns_uncached(
                     ds, ["id", "ground_truth.label"], field))]
        if n <= 200_000:
            paths.insert(1, ("values() at once", lambda: ds.values(["id", "ground_truth.label", field])))
        for name, read in paths:
            with common.Timer() as t:
                got = read()
            if name == "cursor (plugin)":
                matrix = got[1]
            elif name == "values() at once":
                matrix = np.stack([np.asarray(v, np.float32) for v in got[2]])
            else:
                matrix = got[2]
            same = bool(np.allclose(matrix, reference, rtol=1e-6))
            rows.append(dict(op="read ids+labels+embeddings", storage=storage, path=name,
                             seconds=round(t.seconds, 1), same_values=same,
                             peak_rss_gib=round(common.peak_rss_gib(), 2)))
            print(rows[-1], flush=True)
            del got, matrix
    del reference

    rng = np.random.default_rng(0)
    ids = ds.values("id")
    score = rng.random(n)
    index = rng.integers(-1, 10, n)
    names = ["class_%d" % c for c in range(10)]
    column = bulk.ClassificationColumn(names, index, score)
    with common.Timer() as t:
        ds.set_values("w_score", dict(zip(ids, score.tolist())), key_field="id", validate=False)
        ds.set_values("w_flag", dict(zip(ids, (score > 0.5).tolist())), key_field="id", validate=False)
        ds.set_values("w_label", dict(zip(ids, column[0:n])), key_field="id", validate=False)
    rows.append(dict(op="write 3 fields", storage="float, bool, Classification",
                     path="set_values", seconds=round(t.seconds, 1), same_values=True,
                     peak_rss_gib=round(common.peak_rss_gib(), 2)))
    print(rows[-1], flush=True)
    with common.Timer() as t:
        bulk.write_sample_fields(ds, ids, {"b_score": score, "b_flag": score > 0.5, "b_label": column})
    a = ds.values(["w_score", "w_flag", "w_label.label", "w_label.confidence"])
    b = ds.values(["b_score", "b_flag", "b_label.label", "b_label.confidence"])
    rows.append(dict(op="write 3 fields", storage="float, bool, Classification",
                     path="staged $merge (plugin)", seconds=round(t.seconds, 1),
                     same_values=a == b, peak_rss_gib=round(common.peak_rss_gib(), 2)))
    print(rows[-1], flush=True)

    ds.delete()
    payload = {"n": n, "dim": 256, "insert_seconds": round(t_insert.seconds, 1),
               "machine": common.machine(), "rows": rows}
    path = common.save("io" if n == 1_000_000 else "io_%d" % n, payload)
    print(common.markdown_table(rows, ["op", "storage", "path", "seconds", "same_values", "peak_rss_gib"]))
    print("wrote", path)
    mongo.stop()


if __name__ == "__main__":
    main()
