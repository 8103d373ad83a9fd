"""Loading the demo data (and a user's image tree) into FiftyOne.

Used by ``make demo``, the tests and the benchmarks.
"""

import csv
import os

import numpy as np

DEMO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10n-3k")


def load_cifar10n(name, root=DEMO_DIR, noisy_column="worst", embeddings_npz=None,
                  limit=None, overwrite=True):
    """A FiftyOne dataset of CIFAR-10 images with CIFAR-10N noisy labels.

    Fields: ``ground_truth`` (the noisy ``noisy_column`` label), ``clean_label``
    (true label, for scoring only), ``embeddings`` (MobileNetV2, 256-d),
    ``index`` (CIFAR-10 train index), ``is_noisy`` (ground_truth != clean).

    Args:
        name: dataset name (replaced if it exists and ``overwrite``)
        root: folder with ``labels.csv`` and the images it names
        noisy_column: ``worst``, ``random1`` (or ``random2/3`` when present)
        embeddings_npz: npz with ``index`` and ``embeddings``; default
            ``root/embeddings.npz``
        limit: keep only the first ``limit`` rows
    """
    import fiftyone as fo

    if fo.dataset_exists(name):
        if not overwrite:
            return fo.load_dataset(name)
        fo.delete_dataset(name)
    rows = list(csv.DictReader(open(os.path.join(root, "labels.csv"))))[:limit]
    npz = np.load(embeddings_npz or os.path.join(root, "embeddings.npz"))
    row_of = {int(ix): r for r, ix in enumerate(npz["index"])}
    emb = npz["embeddings"].astype(np.float32)
    dataset = fo.Dataset(name)
    dataset.add_samples(
        [
            fo.Sample(
                filepath=os.path.abspath(os.path.join(root, r["filepath"])),
                ground_truth=fo.Classification(label=r[noisy_column]),
                clean_label=fo.Classification(label=r["clean"]),
                embeddings=emb[row_of[int(r["index"])]],
                index=int(r["index"]),
                is_noisy=r[noisy_column] != r["clean"],
            )
            for r in rows
        ],
        progress=False,
    )
    dataset.persistent = True
    return dataset


def load_image_tree(name, root, overwrite=True):
    """A dataset from ``root/<class>/<image>`` with labels in ``ground_truth``."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        if not overwrite:
            return fo.load_dataset(name)
        fo.delete_dataset(name)
    dataset = fo.Dataset.from_dir(
        dataset_dir=root,
        dataset_type=fo.types.ImageClassificationDirectoryTree,
        label_field="ground_truth",
        name=name,
    )
    dataset.persistent = True
    return dataset
