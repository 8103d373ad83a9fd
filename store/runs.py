"""Run records of this plugin, on top of FiftyOne's custom runs.

A run is registered with ``dataset.register_run(run_key, config)`` so users
list, inspect, rename and delete it with the usual FiftyOne calls
(``dataset.list_runs()``, ``get_run_info``, ``load_run_results``,
``rename_run``, ``delete_run``). The config always holds:

- ``method``: the detector (e.g. ``"knn_disagreement"``)
- ``plugin``: ``"@label-noise/curation"``
- ``params``: every parameter the run used
- ``fields``: the sample fields the run wrote (deleted with the run)
- ``num_samples`` and ``skipped``: what was processed and what was left out

Re-running a key replaces the record. Two runs with the same key at the same
time are prevented by a lock document (see :func:`run_lock`).
"""

import base64
import contextlib
import io
import os
import socket

from .clock import utc_now

PLUGIN_NAME = "@label-noise/curation"
_LOCKS_COLLECTION = "label_noise_run_locks"


class RunLockedError(RuntimeError):
    """Raised when another process is running the same run key."""


def record_run(dataset, run_key, method, params, fields, results=None, **info):
    """Registers (or replaces) a run and saves its results.

    Args:
        dataset: the root dataset
        run_key: a valid Python identifier
        method: detector name
        params: JSON-serializable dict of the parameters used
        fields: list of sample fields written by the run
        results (None): JSON-serializable dict saved as run results
        **info: more JSON-serializable config entries (counts, timings)
    """
    config = dataset.init_run(
        method=method,
        plugin=PLUGIN_NAME,
        params=jsonable(params),
        fields=list(fields),
        **jsonable(info),
    )
    dataset.register_run(run_key, config, overwrite=True, cleanup=False)
    if results is not None:
        run_results = dataset.init_run_results(run_key, **jsonable(results))
        dataset.save_run_results(run_key, run_results, overwrite=True)


def plugin_runs(dataset, method=None):
    """Keys of this plugin's runs on ``dataset`` (optionally of one method)."""
    keys = []
    for key in dataset.list_runs():
        config = dataset.get_run_info(key).config
        if getattr(config, "plugin", None) != PLUGIN_NAME:
            continue
        if method is None or config.method == method:
            keys.append(key)
    return keys


def load_results(dataset, run_key):
    """The saved results of a run as a dict (empty when none were saved)."""
    results = dataset.load_run_results(run_key, cache=False)
    if results is None:
        return {}
    return {
        k: v for k, v in results.__dict__.items() if not k.startswith("_")
    }


def delete_run_and_fields(dataset, run_key):
    """Deletes a run of this plugin and every sample field it wrote."""
    config = dataset.get_run_info(run_key).config
    fields = [
        f for f in getattr(config, "fields", []) if dataset.has_field(f)
    ]
    for field_name in fields:
        dataset.delete_sample_field(field_name)
    dataset.delete_run(run_key)
    return fields


def encode_state_dict(state_dict):
    """A torch ``state_dict`` as a base64 string that fits a run record."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_state_dict(text):
    """Inverse of :func:`encode_state_dict`; loads with ``weights_only=True``."""
    import torch

    buffer = io.BytesIO(base64.b64decode(text.encode("ascii")))
    return torch.load(buffer, map_location="cpu", weights_only=True)


#: above this many matrix entries only the largest probabilities are kept
DENSE_MAX_ENTRIES = 20_000_000
#: classes kept per row when a probability matrix is stored sparse
SPARSE_TOP = 10


def encode_probabilities(ids, probabilities):
    """Out-of-sample probabilities as a run-results entry (base64 float16).

    Rows are keyed by id (12-byte ObjectIds), so a later run on a view with
    other samples still aligns them. Above :data:`DENSE_MAX_ENTRIES` entries
    only the :data:`SPARSE_TOP` largest probabilities of a row are kept (the
    rest is spread evenly when decoded).
    """
    import numpy as np

    p = np.asarray(probabilities, dtype=np.float32)
    n, k = p.shape
    entry = {"num_rows": n, "num_classes": k,
             "ids": _b64(b"".join(bytes.fromhex(str(i)) for i in ids))}
    if n * k <= DENSE_MAX_ENTRIES:
        entry["dense"] = _b64(p.astype(np.float16).tobytes())
    else:
        top = np.argsort(-p, axis=1)[:, :SPARSE_TOP]
        entry["top_classes"] = _b64(top.astype(np.uint16).tobytes())
        entry["top_probs"] = _b64(np.take_along_axis(p, top, 1).astype(np.float16).tobytes())
    return entry


def decode_probabilities(entry):
    """Inverse of :func:`encode_probabilities`: ``(ids list, float32 (n, k))``."""
    import numpy as np

    n, k = int(entry["num_rows"]), int(entry["num_classes"])
    raw = base64.b64decode(entry["ids"])
    ids = [raw[12 * i:12 * (i + 1)].hex() for i in range(n)]
    if "dense" in entry:
        p = np.frombuffer(base64.b64decode(entry["dense"]), np.float16).reshape(n, k)
        p = p.astype(np.float32)
    else:
        top = np.frombuffer(base64.b64decode(entry["top_classes"]), np.uint16).reshape(n, -1)
        vals = np.frombuffer(base64.b64decode(entry["top_probs"]), np.float16).reshape(n, -1)
        vals = vals.astype(np.float32)
        rest = np.clip(1.0 - vals.sum(axis=1, keepdims=True), 0.0, None) / max(k - top.shape[1], 1)
        p = np.repeat(rest, k, axis=1)
        np.put_along_axis(p, top.astype(np.int64), vals, 1)
    p = np.clip(p, 1e-6, None)
    return ids, p / p.sum(axis=1, keepdims=True)


def _b64(data):
    return base64.b64encode(data).decode("ascii")


@contextlib.contextmanager
def run_lock(dataset, run_key):
    """Holds an exclusive lock on ``(dataset, run_key)`` in the database.

    A second process asking for the same key while the first runs gets a
    :class:`RunLockedError`. A lock left behind by a killed process on this
    host (its pid no longer alive) is taken over.
    """
    import pymongo.errors
    import fiftyone.core.odm as foo_odm

    locks = foo_odm.get_db_conn()[_LOCKS_COLLECTION]
    lock_id = "%s:%s" % (dataset._doc.id, run_key)
    me = {
        "_id": lock_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": utc_now(),
    }
    try:
        locks.insert_one(me)
    except pymongo.errors.DuplicateKeyError:
        holder = locks.find_one({"_id": lock_id}) or {}
        if _is_stale(holder):
            locks.delete_one({"_id": lock_id, "pid": holder.get("pid")})
            try:
                locks.insert_one(me)
            except pymongo.errors.DuplicateKeyError:
                holder = locks.find_one({"_id": lock_id}) or {}
                _raise_locked(run_key, holder)
        else:
            _raise_locked(run_key, holder)
    try:
        yield
    finally:
        locks.delete_one({"_id": lock_id, "pid": me["pid"], "host": me["host"]})


@contextlib.contextmanager
def dataset_write_lock(dataset, timeout=600.0, poll=0.05):
    """Serialises the write phase of runs on one dataset across processes.

    FiftyOne saves a dataset's field schema and run records by replacing
    whole lists/dicts of the dataset document, so two processes declaring
    new fields (or registering runs) at the same moment can silently drop
    each other's entries. Runs of this plugin therefore write one at a time
    per dataset: this waits (up to ``timeout`` seconds) for the lock, takes
    over a lock of a killed process on this host, then reloads the dataset
    document so the writes start from the current schema.
    """
    import time

    import pymongo.errors
    import fiftyone.core.odm as foo_odm

    locks = foo_odm.get_db_conn()[_LOCKS_COLLECTION]
    lock_id = "%s:__writes__" % dataset._doc.id
    me = {
        "_id": lock_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": utc_now(),
    }
    deadline = time.time() + timeout
    while True:
        try:
            locks.insert_one(me)
            break
        except pymongo.errors.DuplicateKeyError:
            holder = locks.find_one({"_id": lock_id}) or {}
            if _is_stale(holder):
                locks.delete_one({"_id": lock_id, "pid": holder.get("pid")})
                continue
            if time.time() > deadline:
                raise RunLockedError(
                    "Dataset '%s' is being written by another run (pid %s on "
                    "%s) for more than %d s. Retry later"
                    % (dataset.name, holder.get("pid"), holder.get("host"), timeout)
                )
            time.sleep(poll)
    try:
        dataset.reload()
        yield
    finally:
        locks.delete_one({"_id": lock_id, "pid": me["pid"], "host": me["host"]})


def _is_stale(holder):
    if not holder or holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _raise_locked(run_key, holder):
    raise RunLockedError(
        "Run key '%s' is being computed by another process (pid %s on %s, "
        "started %s UTC). Wait for it to finish or use another run_key"
        % (run_key, holder.get("pid"), holder.get("host"), holder.get("started"))
    )


def jsonable(value):
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
