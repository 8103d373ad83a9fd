"""Test session setup: a private MongoDB and this repo as the only plugin.

The database is started in ``pytest_configure``, i.e. before any test module
(and so fiftyone) is imported, and stopped after the session.
"""

import os
import sys
import uuid

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import private_mongo  # noqa: E402

PLUGIN = "@label-noise/curation"
SHARED_DATA = os.path.join(private_mongo.REPO_ROOT, "..", "shared", "data")
_MONGO = None


def pytest_configure(config):
    global _MONGO
    if "fiftyone" in sys.modules:
        raise RuntimeError("fiftyone imported before the test database was set up")
    # FiftyOne's own data loaders (compute_embeddings) without worker
    # processes in the test process: it also runs mongod, the App and CLI
    # subprocesses, and torch's SIGCHLD check of its worker pids then failed
    # a zoo test twice in the full suite on FiftyOne 1.10 ("DataLoader worker
    # exited unexpectedly with exit code 1", after the embeddings were done;
    # never alone). The plugin does not choose FiftyOne's worker count;
    # users keep FiftyOne's default.
    os.environ.setdefault("FIFTYONE_DEFAULT_PROCESS_POOL_WORKERS", "0")
    _MONGO = private_mongo.start()


def pytest_unconfigure(config):
    if _MONGO is not None:
        _MONGO.stop()


@pytest.fixture(scope="session")
def mongo():
    return _MONGO


@pytest.fixture
def new_dataset():
    """Factory of empty datasets with unique names, deleted after the test."""
    import fiftyone as fo

    made = []

    def make(name=None):
        ds = fo.Dataset(name or "test-%s" % uuid.uuid4().hex[:10])
        made.append(ds)
        return ds

    yield make
    for ds in made:
        if not ds.deleted:
            ds.delete()


def operator(name):
    import fiftyone.operators as foo

    return foo.get_operator("%s/%s" % (PLUGIN, name))


def plugin_module(name):
    """A module of the plugin as FiftyOne loaded it (its relative imports
    work), e.g. ``plugin_module("store.review")``."""
    import importlib

    loaded = type(operator("compute_knn_disagreement")).__module__
    return importlib.import_module(loaded[: loaded.rindex(".operators.")] + "." + name)


def run_operator(name, dataset_or_view, **params):
    """Executes an operator immediately like the App would, via execute_operator."""
    import fiftyone.operators as foo
    import fiftyone.core.view as fov

    ctx = {"params": params}
    if isinstance(dataset_or_view, fov.DatasetView):
        ctx["view"] = dataset_or_view
    else:
        ctx["dataset"] = dataset_or_view
    return foo.execute_operator("%s/%s" % (PLUGIN, name), ctx=ctx).result


def blobs(num_classes=4, per_class=60, dim=16, noise_rate=0.1, seed=0, spread=0.35):
    """Gaussian blobs with a known fraction of flipped labels.

    Returns (embeddings float32 (n, dim), true labels int, noisy labels int).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    y = np.repeat(np.arange(num_classes), per_class)
    x = centers[y] + spread * rng.normal(size=(len(y), dim)) / np.sqrt(dim)
    noisy = y.copy()
    flip = rng.random(len(y)) < noise_rate
    noisy[flip] = (y[flip] + rng.integers(1, num_classes, flip.sum())) % num_classes
    return x.astype(np.float32), y, noisy


def textures(m, seed=0, size=32):
    """Smooth random images, luminance-dominated like photos: 8x8 grey noise
    plus a weaker 4x4 colour tint, bicubic to ``size``; uint8 (m, size, size, 3)."""
    from PIL import Image

    rng = np.random.default_rng(seed)

    def up(x):
        return np.asarray(Image.fromarray(x.astype(np.uint8)).resize((size, size), Image.BICUBIC),
                          dtype=np.float64)

    out = []
    for _ in range(m):
        grey = up(np.repeat(rng.integers(30, 226, (8, 8, 1)), 3, axis=2))
        tint = up(rng.integers(0, 256, (4, 4, 3))) - 128
        out.append(np.clip(grey + 0.3 * tint, 0, 255).astype(np.uint8))
    return np.stack(out)


def moved(x, rows, relative, rng):
    """Vectors at ``relative`` times the median nearest-neighbour cosine
    distance of ``x`` from ``x[rows]`` (each rotated in a random orthogonal
    direction, its length kept); float32 (len(rows), d)."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    theta = np.arccos(1 - relative * np.median(1 - sims.max(1)))
    out = []
    for r in rows:
        v = rng.normal(size=x.shape[1])
        v -= (v @ unit[r]) * unit[r]
        v /= np.linalg.norm(v)
        out.append(np.linalg.norm(x[r]) * (np.cos(theta) * unit[r] + np.sin(theta) * v))
    return np.array(out, dtype=np.float32)


@pytest.fixture
def blob_dataset(new_dataset, tmp_path):
    """A dataset of Gaussian blobs with real (tiny) PNG files and noisy labels.

    Fields: ``ground_truth`` (noisy), ``clean_label`` (true), ``embeddings``,
    ``is_noisy``. (Not ``clean``: a field of that name shadows Sample.clean())
    """
    import fiftyone as fo
    from PIL import Image

    def make(num_classes=4, per_class=60, dim=16, noise_rate=0.1, seed=0, class_names=None):
        x, y, noisy = blobs(num_classes, per_class, dim, noise_rate, seed)
        names = class_names or ["class_%d" % c for c in range(num_classes)]
        ds = new_dataset()
        samples = []
        rng = np.random.default_rng(seed)
        for i in range(len(y)):
            path = str(tmp_path / ("img_%05d.png" % i))
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
            samples.append(
                fo.Sample(
                    filepath=path,
                    ground_truth=fo.Classification(label=names[noisy[i]]),
                    clean_label=fo.Classification(label=names[y[i]]),
                    embeddings=x[i],
                    is_noisy=bool(noisy[i] != y[i]),
                )
            )
        ds.add_samples(samples)
        return ds

    return make


def require_shared_data(*parts):
    """Path under ../shared/data, or skip (fail in CI) when it is absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        message = "shared data not found at %s (needed by this test)" % path
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must have ../shared/data")
        pytest.skip(message)
    return path


def run_delegated(name, dataset_or_view, **params):
    """Queues an operator run as the App's "Delegate" button does, then runs
    the queue with the same service ``fiftyone delegated launch`` uses.

    Returns the finished delegated-operation document (check ``.run_state``).
    """
    import fiftyone.operators.delegated as food

    queued = operator(name)(dataset_or_view, delegate=True, **params)
    assert queued.delegated, "operator did not accept delegation"
    service = food.DelegatedOperationService()
    op_id = queued.result["id"]
    doc = service.get(op_id)
    service.execute_operation(doc)
    return service.get(op_id)


def snapshot(dataset):
    """The raw database state of a dataset: every sample document as stored
    (bytes of vectors included), its field schema and its runs. Two equal
    snapshots mean nothing was written."""
    docs = list(dataset._sample_collection.find({}, sort=[("_id", 1)]))
    return {
        "samples": docs,
        "schema": sorted(dataset.get_field_schema()),
        "runs": sorted(dataset.list_runs()),
    }
