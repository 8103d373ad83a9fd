"""Object-detection datasets with real (or injected) label noise, exact boxes.

Each canvas (96x96, mid-gray) gets 2-4 source images pasted at known
positions (one per 48x48 quadrant, random offset inside it), so every box is
exact and every object keeps its source image's labels:

- ``cifar10n``: CIFAR-10 train images (32x32) with their CIFAR-10N human
  labels (``worst``, ``random1``...) as object labels and the clean CIFAR-10
  label for scoring; each object's embedding is its image's shared
  MobileNetV2 embedding, so object-level results compare with image-level
  ones on the same labels.
- ``fmnist``: Fashion-MNIST (28x28, grayscale) with injected noise
  (``uniform-20``: 20% of the labels replaced by another class, seeded).

Writes ``<out>/images/<canvas>.jpg``, ``<out>/objects.csv`` (one row per
object: ``canvas,filepath,index,x,y,w,h,clean,<label columns>``, boxes
relative) and, for CIFAR, ``<out>/embeddings.npz`` (``index``,
``embeddings``). :func:`load_objects` loads such a folder into FiftyOne.

Usage::

    python scripts/make_detection_dataset.py --source cifar10n --out /tmp/objects   # all 50,000
    python scripts/make_detection_dataset.py --source demo --out demo/cifar10n-objects --limit 1200
    python scripts/make_detection_dataset.py --source fmnist --out demo/fmnist-objects --limit 600
"""

import argparse
import csv
import io
import os
import sys
import tarfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")
DEMO = os.path.join(REPO, "demo", "cifar10n-3k")

CANVAS = 96
CELL = CANVAS // 2
PER_IMAGE = (2, 4)
FMNIST_NOISE = 0.2


def layout(num_objects, tile, seed=0, per_image=PER_IMAGE):
    """Canvases of 2-4 objects: list of lists of ``(object row, x, y)`` pixels.

    Objects are taken in a seeded random order; each goes into its own
    quadrant of the canvas at a random offset, so boxes never overlap.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_objects)
    canvases, start = [], 0
    while start < num_objects:
        k = int(rng.integers(per_image[0], per_image[1] + 1))
        rows = order[start:start + k]
        start += k
        cells = rng.choice(4, size=len(rows), replace=False)
        placed = []
        for row, cell in zip(rows, cells):
            cx, cy = (cell % 2) * CELL, (cell // 2) * CELL
            dx, dy = rng.integers(0, CELL - tile + 1, size=2)
            placed.append((int(row), int(cx + dx), int(cy + dy)))
        canvases.append(placed)
    return canvases


def _cifar_rows(source, limit, seed):
    if source == "demo":
        rows = list(csv.DictReader(open(os.path.join(DEMO, "labels.csv"))))
        read = lambda r: open(os.path.join(DEMO, r["filepath"]), "rb").read()  # noqa: E731
        npz = np.load(os.path.join(DEMO, "embeddings.npz"))
    else:
        rows = list(csv.DictReader(open(os.path.join(SHARED, "cifar10", "labels.csv"))))
        archive = os.path.join(SHARED, "cifar10", "cifar10_train_jpg.tar.gz")
        read = _tar_reader(archive)
        npz = np.load(os.path.join(SHARED, "cifar10-embeddings", "train_mobilenetv2.npz"))
    if limit:
        rows = [rows[i] for i in sorted(np.random.default_rng(seed).permutation(len(rows))[:limit])]
    row_of = {int(ix): k for k, ix in enumerate(npz["index"])}
    emb = npz["embeddings"][[row_of[int(r["index"])] for r in rows]]
    label_columns = [c for c in rows[0] if c not in ("index", "filepath")]
    return rows, read, emb, label_columns, 32


def _fmnist_rows(limit, seed):
    rows = list(csv.DictReader(open(os.path.join(SHARED, "fashion-mnist-small", "labels.csv"))))
    read = _tar_reader(os.path.join(SHARED, "fashion-mnist-small", "fashion_mnist_small_png.tar.gz"))
    if limit:
        rows = [rows[i] for i in sorted(np.random.default_rng(seed).permutation(len(rows))[:limit])]
    classes = sorted({r["label"] for r in rows})
    rng = np.random.default_rng(seed + 1)
    flip = rng.random(len(rows)) < FMNIST_NOISE
    out = []
    for r, f in zip(rows, flip):
        noisy = r["label"]
        if f:
            noisy = rng.choice([c for c in classes if c != r["label"]])
        out.append({"index": r["index"], "filepath": r["filepath"], "clean": r["label"],
                    "uniform-20": str(noisy)})
    return out, read, None, ["clean", "uniform-20"], 28


def _tar_reader(archive):
    """``read(row) -> bytes`` of the member ``row["filepath"]`` of a .tar.gz.

    The archive is read once, in order, into memory (CIFAR-10: ~100 MB):
    random access into a gzip stream re-decompresses from the start, which
    made the 50,000-object build take half an hour.
    """
    files = {}
    with tarfile.open(archive, "r|gz") as tar:  # streaming, one pass
        for member in tar:
            if member.isfile():
                files[member.name.lstrip("./")] = tar.extractfile(member).read()
    return lambda r: files[r["filepath"]]


def make(source, out, limit=None, seed=20261202):
    """Writes a detection dataset folder (see module docstring); returns its
    number of canvases and objects."""
    from PIL import Image

    if source in ("cifar10n", "demo"):
        rows, read, emb, label_columns, tile = _cifar_rows(source, limit, seed)
    elif source == "fmnist":
        rows, read, emb, label_columns, tile = _fmnist_rows(limit, seed)
    else:
        raise ValueError("source must be cifar10n, demo or fmnist")
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    canvases = layout(len(rows), tile, seed)
    table, order = [], []
    for c, placed in enumerate(canvases):
        canvas = Image.new("RGB", (CANVAS, CANVAS), (128, 128, 128))
        name = "images/%05d.jpg" % c
        for row, x, y in placed:
            r = rows[row]
            with Image.open(io.BytesIO(read(r))) as img:
                canvas.paste(img.convert("RGB"), (x, y))
            table.append(dict(
                canvas=c, filepath=name, index=r["index"],
                x=x / CANVAS, y=y / CANVAS, w=tile / CANVAS, h=tile / CANVAS,
                **{col: r[col] for col in label_columns},
            ))
            order.append(row)
        canvas.save(os.path.join(out, name), quality=95)
    with open(os.path.join(out, "objects.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    if emb is not None:
        np.savez(os.path.join(out, "embeddings.npz"),
                 index=np.array([int(rows[r]["index"]) for r in order], np.int32),
                 embeddings=np.asarray(emb)[order].astype(np.float16))
    return len(canvases), len(table)


def load_objects(name, root, label_column="worst", with_embeddings=True, overwrite=True):
    """A FiftyOne dataset of a :func:`make` folder: one sample per canvas,
    ``ground_truth`` = ``fo.Detections`` whose labels are ``label_column``.

    Each Detection has ``clean_label`` (str, for scoring only), ``is_noisy``
    (bool), ``source_index`` (int) and, with ``with_embeddings`` and an
    ``embeddings.npz``, ``embeddings`` (its source image's vector, declared
    as a vector attribute). Inserted in bulk (the documents FiftyOne writes).
    """
    import datetime

    import fiftyone as fo
    import fiftyone.core.utils as fou
    from bson import ObjectId

    if fo.dataset_exists(name):
        if not overwrite:
            return fo.load_dataset(name)
        fo.delete_dataset(name)
    rows = list(csv.DictReader(open(os.path.join(root, "objects.csv"))))
    emb = None
    npz_path = os.path.join(root, "embeddings.npz")
    if with_embeddings and os.path.exists(npz_path):
        emb = np.load(npz_path)["embeddings"].astype(np.float32)
    dataset = fo.Dataset(name)
    dataset.media_type = "image"
    dataset_id = ObjectId(dataset._doc.id)
    now = datetime.datetime.utcnow()
    docs, current = [], None
    rng = np.random.default_rng(0)
    for k, r in enumerate(rows):
        if current is None or current["filepath"] != os.path.abspath(os.path.join(root, r["filepath"])):
            current = {
                "_id": ObjectId(), "filepath": os.path.abspath(os.path.join(root, r["filepath"])),
                "tags": [], "_media_type": "image", "_rand": float(rng.random()),
                "_dataset_id": dataset_id, "created_at": now, "last_modified_at": now,
                "ground_truth": {"_id": ObjectId(), "_cls": "Detections", "detections": []},
            }
            docs.append(current)
        det = {
            "_id": ObjectId(), "_cls": "Detection", "tags": [], "attributes": {},
            "label": r[label_column],
            "bounding_box": [float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"])],
            "clean_label": r["clean"], "is_noisy": r[label_column] != r["clean"],
            "source_index": int(r["index"]),
        }
        if emb is not None:
            det["embeddings"] = fou.serialize_numpy_array(emb[k])
        current["ground_truth"]["detections"].append(det)
    for start in range(0, len(docs), 5000):
        dataset._sample_collection.insert_many(docs[start:start + 5000])
    dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for attr, ftype in (("clean_label", fo.StringField), ("is_noisy", fo.BooleanField),
                        ("source_index", fo.IntField)):
        dataset.add_sample_field("ground_truth.detections." + attr, ftype)
    if emb is not None:
        dataset.add_sample_field("ground_truth.detections.embeddings", fo.VectorField)
    dataset.reload()
    return dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("cifar10n", "demo", "fmnist"), default="cifar10n")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=None, help="source images to use (default all)")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args(argv)
    canvases, objects = make(args.source, args.out, args.limit, args.seed)
    print("%s: %d canvases, %d objects" % (args.out, canvases, objects))


if __name__ == "__main__":
    sys.exit(main())
