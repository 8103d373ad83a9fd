"""Builds the shipped demo subset from ../shared/data (run once; output committed).

Takes PER_CLASS CIFAR-10 train images per class (fixed seed), their CIFAR-10N
labels (clean, worst, random1) and their shared MobileNetV2 embeddings.
Usage: python scripts/make_demo_subset.py [OUT_DIR] [PER_CLASS]
"""

import csv
import os
import sys
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")


def main(out_dir, per_class):
    rows = list(csv.DictReader(open(os.path.join(SHARED, "cifar10", "labels.csv"))))
    rng = np.random.default_rng(20261123)
    chosen = []
    for cls in sorted({r["clean"] for r in rows}):
        members = [r for r in rows if r["clean"] == cls]
        pick = rng.choice(len(members), size=per_class, replace=False)
        chosen += [members[i] for i in sorted(pick)]
    chosen.sort(key=lambda r: int(r["index"]))
    wanted = {r["filepath"]: r for r in chosen}
    os.makedirs(out_dir, exist_ok=True)
    with tarfile.open(os.path.join(SHARED, "cifar10", "cifar10_train_jpg.tar.gz")) as tar:
        for member in tar:
            if member.name in wanted:
                dest = os.path.join(out_dir, "images", member.name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as f:
                    f.write(tar.extractfile(member).read())
    missing = [p for p in wanted if not os.path.exists(os.path.join(out_dir, "images", p))]
    if missing:
        raise SystemExit("not found in tar: %s" % missing[:5])
    cols = ["index", "filepath", "clean", "worst", "random1"]
    with open(os.path.join(out_dir, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in chosen:
            w.writerow([r["index"], "images/" + r["filepath"], r["clean"], r["worst"], r["random1"]])
    emb = np.load(os.path.join(SHARED, "cifar10-embeddings", "train_mobilenetv2.npz"))
    index = np.array([int(r["index"]) for r in chosen])
    assert (emb["index"][index] == index).all()
    np.savez_compressed(
        os.path.join(out_dir, "embeddings.npz"),
        index=index.astype(np.int32),
        embeddings=emb["embeddings"][index],
    )
    print("wrote %d samples to %s" % (len(chosen), out_dir))


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "demo", "cifar10n-3k"),
        int(sys.argv[2]) if len(sys.argv) > 2 else 300,
    )
