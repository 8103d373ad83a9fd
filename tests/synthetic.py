"""Fast synthetic datasets for reliability tests and the scale benchmark.

``fo.Dataset.add_samples`` validates every sample in Python (~600 samples/s
on the 2-core CI machine); the scale benchmark needs 1,000,000 samples and
the interruption tests tens of thousands. :func:`insert_blob_samples` writes
the same documents FiftyOne writes (same fields, same binary encoding of
vectors) straight to the sample collection in batches, then declares the
fields, so the result is an ordinary dataset for every FiftyOne API.

Import only after the private database is set up (it imports fiftyone).
"""

import datetime

import numpy as np


def blob_centers(dim, num_classes, seed=0):
    """``num_classes`` random unit vectors of dimension ``dim`` (seeded)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)).astype(np.float32)
    return centers / np.linalg.norm(centers, axis=1, keepdims=True)


def class_subspaces(dim, num_classes, latent, seed=0):
    """A random ``latent``-dimensional orthonormal basis per class: float32
    (classes, dim, latent) (seeded)."""
    rng = np.random.default_rng([seed, 7])
    return np.stack([
        np.linalg.qr(rng.standard_normal((dim, latent)))[0] for _ in range(num_classes)
    ]).astype(np.float32)


def gaussian_blobs(n, dim, num_classes, noise_rate=0.1, seed=0, spread=0.6, centers=None,
                   subspaces=None):
    """``n`` points around ``num_classes`` unit centres (:func:`blob_centers`).

    With ``subspaces`` (:func:`class_subspaces`), each point also moves by a
    unit-scale Gaussian step inside its class's low-dimensional subspace, and
    ``spread`` is the isotropic noise around it: the classes are then
    low-dimensional, as image embeddings are (with a 16-d subspace and
    ``spread=0.2`` an IVF index needs as many cells probed for a given
    recall as on CIFAR-10 MobileNetV2 embeddings: ``bench_neighbours.py``).

    Returns (x float32 (n, dim), true int labels, noisy int labels).
    """
    if centers is None:
        centers = blob_centers(dim, num_classes, seed)
    rng = np.random.default_rng(seed + 1)
    y = rng.integers(0, num_classes, n)
    mean = centers[y]
    if subspaces is not None:
        latent = subspaces.shape[2]
        z = rng.standard_normal((n, latent), dtype=np.float32) / np.sqrt(latent)
        mean = mean + np.einsum("ndl,nl->nd", subspaces[y], z)
    x = mean + (spread / np.sqrt(dim)) * rng.standard_normal(
        (n, dim), dtype=np.float32
    )
    noisy = y.copy()
    flip = rng.random(n) < noise_rate
    noisy[flip] = (y[flip] + rng.integers(1, num_classes, flip.sum())) % num_classes
    return x.astype(np.float32), y, noisy


def insert_blob_samples(
    dataset,
    n,
    dim=16,
    num_classes=4,
    noise_rate=0.1,
    seed=0,
    filepath="/nonexistent/synthetic.png",
    batch_size=10000,
    class_names=None,
    progress=None,
    latent=0,
    spread=0.6,
):
    """Appends ``n`` Gaussian-blob samples to ``dataset`` in bulk.

    Fields: ``ground_truth`` (noisy ``fo.Classification``), ``clean``
    (``fo.Classification``), ``embeddings`` (vector), ``is_noisy`` (bool).
    Vectors are generated batch by batch, so memory stays bounded. With
    ``latent > 0`` each class is ``latent``-dimensional (:func:`gaussian_blobs`
    with :func:`class_subspaces`) and ``spread`` is the noise around it.

    Returns:
        the number of noisy samples inserted
    """
    names = class_names or ["class_%d" % c for c in range(num_classes)]
    num_noisy = 0
    numbered_paths = "%" in filepath
    centers = blob_centers(dim, num_classes, seed)
    subspaces = class_subspaces(dim, num_classes, latent, seed) if latent else None
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x, y, noisy = gaussian_blobs(
            m, dim, num_classes, noise_rate, seed=seed + start, spread=spread, centers=centers,
            subspaces=subspaces,
        )
        insert_labeled_samples(
            dataset,
            [(filepath % (start + i)) if numbered_paths else filepath for i in range(m)],
            {"ground_truth": [names[c] for c in noisy], "clean": [names[c] for c in y]},
            x,
            flags={"is_noisy": noisy != y},
            rand=np.random.default_rng(seed + start + 2).random(m),
        )
        num_noisy += int((noisy != y).sum())
        if progress is not None:
            progress(start + m, n)
    return num_noisy


def insert_labeled_samples(dataset, filepaths, labels, embeddings, flags=None, rand=None):
    """Appends image samples to ``dataset`` in one bulk insert.

    What ``dataset.add_samples`` would store, without building a
    ``fo.Sample`` per row (50,000 CIFAR rows: 40 s that way).

    Args:
        filepaths: one path per sample
        labels: ``{field: [class name per sample]}``, stored as ``fo.Classification``
        embeddings: float array (n, d), stored in ``embeddings``
        flags ({}): ``{field: bool array}``
        rand (None): the ``_rand`` values; default uniform, unseeded
    """
    import fiftyone as fo
    import fiftyone.core.utils as fou
    from bson import ObjectId

    if dataset.media_type is None:
        dataset.media_type = "image"  # what add_samples sets on the first sample
    flags = flags or {}
    rand = np.random.default_rng().random(len(filepaths)) if rand is None else rand
    dataset_id = ObjectId(dataset._doc.id)
    now = datetime.datetime.utcnow()
    docs = []
    for i, path in enumerate(filepaths):
        doc = {
            "_id": ObjectId(),
            "filepath": path,
            "tags": [],
            "_media_type": "image",
            "_rand": float(rand[i]),
            "_dataset_id": dataset_id,
            "created_at": now,
            "last_modified_at": now,
            "embeddings": fou.serialize_numpy_array(embeddings[i]),
        }
        for field, names in labels.items():
            doc[field] = {"_id": ObjectId(), "_cls": "Classification", "tags": [], "label": names[i]}
        for field, values in flags.items():
            doc[field] = bool(values[i])
        docs.append(doc)
    if docs:
        dataset._sample_collection.insert_many(docs)  # ordered: natural order = row order
    for field in labels:
        if not dataset.has_sample_field(field):
            dataset.add_sample_field(
                field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification
            )
    if not dataset.has_sample_field("embeddings"):
        dataset.add_sample_field("embeddings", fo.VectorField)
    for field in flags:
        if not dataset.has_sample_field(field):
            dataset.add_sample_field(field, fo.BooleanField)
    dataset.reload()
