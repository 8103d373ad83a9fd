"""Beyond one machine: several ``fiftyone delegated launch`` workers against
one shared MongoDB process the queue, each operation exactly once.

Here both workers and the queue share this session's private mongod on
loopback; on a cluster the workers run on other machines with the same
``FIFTYONE_DATABASE_URI`` (see docs/reliability.md).
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import operator
from synthetic import insert_blob_samples


def _worker(log_path):
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return subprocess.Popen(
        [cli, "delegated", "launch"],
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,  # its own process group, stopped below
    )


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_two_workers_process_the_queue_once_each(new_dataset, tmp_path):
    import fiftyone.operators.delegated as food

    ds = new_dataset()
    insert_blob_samples(ds, 3000, dim=16, num_classes=5, seed=11)
    ks = [3, 5, 7, 9]
    queued = []
    for k in ks:
        doc = operator("compute_knn_disagreement")(
            ds, delegate=True, k=k, run_key="w%d" % k, output_field="w%d" % k,
            suggestion_field="",
        )
        queued.append(doc.result["id"])
    service = food.DelegatedOperationService()
    assert all(service.get(i).run_state == "queued" for i in queued)

    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    workers = [_worker(str(p)) for p in logs]
    try:
        deadline = time.time() + 240
        states = {}
        while time.time() < deadline:
            states = {i: service.get(i).run_state for i in queued}
            if all(s in ("completed", "failed") for s in states.values()):
                break
            assert all(w.poll() is None for w in workers), [p.read_text() for p in logs]
            time.sleep(0.5)
    finally:
        for w in workers:
            _stop(w)
    assert all(s == "completed" for s in states.values()), (
        states, [service.get(i).result for i in queued]
    )

    ran = [re.findall(r"Running operation (\w+)", p.read_text()) for p in logs]
    executed = ran[0] + ran[1]
    if executed:  # the workers log each operation they claim
        assert sorted(executed) == sorted(map(str, queued)), ran  # each exactly once
    print("operations per worker:", [len(r) for r in ran])

    ds.reload()
    raw = ds._sample_collection.find_one({}, projection=["w%d" % k for k in ks])
    print("schema:", sorted(f for f in ds.get_field_schema() if f.startswith("w")),
          "raw sample keys:", sorted(k for k in raw if k.startswith("w")))
    for k in ks:
        scores = np.array(ds.values("w%d" % k))
        assert len(scores) == len(ds) and not np.isnan(scores).any()
        assert ds.get_run_info("w%d" % k).config.params["k"] == k
