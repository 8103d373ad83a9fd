"""Interruption and concurrency: real processes, real kills, real database.

- a run killed with SIGKILL in the middle leaves the previous results of its
  run key intact (field values, run record, results) and no new field; the
  lock it left behind is taken over by the next run;
- two processes computing different run keys at once both finish correctly;
  the same key at once: one wins, the other is refused with RunLockedError;
- the database going away mid-run fails the run with a connection error,
  and after mongod restarts on the same files the dataset is intact.

Children are ``python -c`` scripts with this session's environment (private
``FIFTYONE_DATABASE_URI`` and ``FIFTYONE_PLUGINS_DIR``), or, for the database
test, a second private mongod started here.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from conftest import PLUGIN
import private_mongo
from synthetic import insert_blob_samples

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KNN = PLUGIN + "/compute_knn_disagreement"
N = 10000  # big enough that a kNN run with k=100 takes a moment here
DIM = 64

# A child: loads a dataset, optionally waits for a "go" file (so two children
# start together), runs one operator, prints every progress message.
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, %(tests)r)
import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

def _progress(self, progress=None, label=None):
    print("PROGRESS %%s %%s" %% (progress, label), flush=True)

ExecutionContext.set_progress = _progress
%(pre)s
ds = fo.load_dataset(%(name)r)
print("READY", os.getpid(), flush=True)
go = %(go)r
while go and not os.path.exists(go):
    time.sleep(0.005)
try:
    out = foo.execute_operator(%(uri)r, ctx={"dataset": ds, "params": %(params)r})
except Exception as e:
    print("ERROR", str(e).strip().splitlines()[-1], flush=True)
    sys.exit(3)
print("RESULT", json.dumps(out.result, default=str), flush=True)
"""


def spawn(tmp_path, tag, name, params, go=None, env=None, uri=KNN, pre=""):
    log = tmp_path / ("%s.log" % tag)
    script = CHILD % dict(tests=TESTS, name=name, params=params, go=go, uri=uri, pre=pre)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=env or os.environ.copy(),
        cwd=os.path.dirname(TESTS),
    )
    proc.log = log
    return proc


def output(proc):
    return proc.log.read_text(errors="replace")


def wait_for(proc, text, timeout=180):
    """Waits until ``text`` appears in the child's output (False if it exits
    or times out first)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in output(proc):
            return True
        if proc.poll() is not None:
            return text in output(proc)
        time.sleep(0.01)
    return False


def finish(proc, timeout=300):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture(scope="module")
def big():
    """A 20k-sample dataset with a finished kNN run ``knn`` (k=10)."""
    import fiftyone as fo

    ds = fo.Dataset("interrupt-%d" % os.getpid())
    insert_blob_samples(ds, N, dim=DIM, num_classes=10, seed=3)
    _run(ds, k=10)
    yield ds
    ds.delete()


def _run(ds, **params):
    import fiftyone.operators as foo

    return foo.execute_operator(KNN, ctx={"dataset": ds, "params": params}).result


def state(ds, run_key, fields):
    """Values of ``fields`` by sample id, the run record and its results."""
    ds.reload()
    ids = ds.values("id")
    values = {}
    for f in fields:
        vals = ds.values(f)
        values[f] = dict(
            zip(ids, [v.to_dict() if hasattr(v, "to_dict") else v for v in vals])
        )
    info = ds.get_run_info(run_key).serialize()
    results = ds.load_run_results(run_key, cache=False)
    return values, info, None if results is None else results.serialize()


def lock_doc(ds, run_key):
    import fiftyone.core.odm as foodm

    return foodm.get_db_conn()["label_noise_run_locks"].find_one(
        {"_id": "%s:%s" % (ds._doc.id, run_key)}
    )


def test_sigkill_mid_run_keeps_previous_results(big, tmp_path):
    fields = ["knn_disagreement", "knn_label"]
    before = state(big, "knn_disagreement", fields)
    schema_before = set(big.get_field_schema())
    proc = spawn(
        tmp_path, "killed", big.name,
        {"k": 100, "run_key": "knn_disagreement", "tag": "suspect"},
    )
    assert wait_for(proc, "PROGRESS 0.1 searching"), output(proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert "PROGRESS 0.97" not in output(proc), "killed too late: " + output(proc)

    assert state(big, "knn_disagreement", fields) == before
    assert set(big.get_field_schema()) == schema_before
    assert big.count_sample_tags() == {}
    assert big.get_run_info("knn_disagreement").config.params["k"] == 10
    # the killed process left its lock; the next run takes it over
    held = lock_doc(big, "knn_disagreement")
    assert held is not None and held["pid"] == proc.pid
    summary = _run(big, k=100, run_key="knn_disagreement")
    assert summary["num_samples"] == N
    assert big.get_run_info("knn_disagreement").config.params["k"] == 100
    assert lock_doc(big, "knn_disagreement") is None
    # restore the k=10 run for the other tests
    _run(big, k=10, run_key="knn_disagreement")


# Kills the child with SIGKILL right after its write phase has staged every
# new value in the side collection, before the server-side merge is sent.
KILL_AFTER_STAGING = r"""
import signal
import pymongo.collection
_insert_many = pymongo.collection.Collection.insert_many

def _insert_then_die(self, documents, *args, **kwargs):
    result = _insert_many(self, documents, *args, **kwargs)
    if self.name.endswith("_ln_staging"):
        print("STAGED", self.name, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return result

pymongo.collection.Collection.insert_many = _insert_then_die
"""


def test_sigkill_during_the_write_leaves_no_half_written_field(big, tmp_path):
    fields = ["knn_disagreement", "knn_label"]
    before = state(big, "knn_disagreement", fields)
    schema_before = set(big.get_field_schema())
    proc = spawn(tmp_path, "killed-writing", big.name, {"k": 30, "run_key": "knn_disagreement"},
                 pre=KILL_AFTER_STAGING)
    assert finish(proc) == -signal.SIGKILL, output(proc)
    staging = big._sample_collection_name + "_ln_staging"
    assert "STAGED " + staging in output(proc), output(proc)

    # the new values were staged, not merged: both fields and the schema as before
    assert state(big, "knn_disagreement", fields) == before
    assert set(big.get_field_schema()) == schema_before
    database = big._sample_collection.database
    assert database[staging].count_documents({}) == N  # left behind by the kill
    # the next run discards the stale staging collection and writes everything
    _run(big, k=30, run_key="knn_disagreement")
    assert staging not in database.list_collection_names()
    assert set(big.get_field_schema()) == schema_before
    expected = _expected_scores(big, 30)
    got = dict(zip(big.values("id"), big.values("knn_disagreement")))
    assert max(abs(got[i] - expected[i]) for i in got) < 1e-6
    _run(big, k=10, run_key="knn_disagreement")  # restore for the other tests


def _expected_scores(ds, k):
    from methods.knn_disagreement import knn_disagreement

    ids, labels, x = ds.values(["id", "ground_truth.label", "embeddings"])
    classes = sorted(set(labels))
    y = np.array([classes.index(l) for l in labels])
    score = knn_disagreement(np.stack(x), y, k=k)["score"]
    return dict(zip(ids, score.tolist()))


def _start_together(tmp_path, procs):
    go = str(tmp_path / "go")
    for proc in procs:
        assert wait_for(proc, "READY"), output(proc)
    open(go, "w").close()


def test_two_keys_at_once_both_complete(big, tmp_path):
    go = str(tmp_path / "go")
    a = spawn(tmp_path, "a", big.name,
              {"k": 7, "run_key": "k7", "output_field": "k7", "suggestion_field": "k7_label"}, go=go)
    b = spawn(tmp_path, "b", big.name,
              {"k": 15, "run_key": "k15", "output_field": "k15", "suggestion_field": "k15_label"}, go=go)
    _start_together(tmp_path, [a, b])
    assert finish(a) == 0, output(a)
    assert finish(b) == 0, output(b)
    big.reload()
    for key, k in (("k7", 7), ("k15", 15)):
        assert big.get_run_info(key).config.params["k"] == k
        got = dict(zip(big.values("id"), big.values(key)))
        expected = _expected_scores(big, k)
        assert got.keys() == expected.keys()
        assert max(abs(got[i] - expected[i]) for i in got) < 1e-6, key
        assert big.count("%s_label" % key) == N
        assert lock_doc(big, key) is None


def test_same_key_at_once_one_wins_other_refused(big, tmp_path):
    go = str(tmp_path / "go")
    params = {"k": 50, "run_key": "same", "output_field": "same", "suggestion_field": ""}
    procs = [spawn(tmp_path, "s%d" % i, big.name, params, go=go) for i in range(2)]
    _start_together(tmp_path, procs)
    codes = [finish(p) for p in procs]
    assert sorted(codes) == [0, 3], [output(p) for p in procs]
    loser = procs[codes.index(3)]
    winner = procs[codes.index(0)]
    message = output(loser)
    assert "RunLockedError" in message, message
    assert "Run key 'same' is being computed by another process (pid %d" % winner.pid in message
    assert "use another run_key" in message
    big.reload()
    assert big.count("same") == N
    assert big.get_run_info("same").config.params["k"] == 50
    assert lock_doc(big, "same") is None


# ------------------------------------------------------- database away ---

DB_SETUP = r"""
import json, sys
sys.path.insert(0, %(tests)r)
import fiftyone as fo
import fiftyone.operators as foo
from synthetic import insert_blob_samples
ds = fo.Dataset("db-away", persistent=True)
insert_blob_samples(ds, %(n)d, dim=%(dim)d, num_classes=10, seed=5)
foo.execute_operator(%(uri)r, ctx={"dataset": ds, "params": {"k": 10}})
ids, score, label = ds.values(["id", "knn_disagreement", "knn_label.label"])
json.dump({"ids": ids, "score": score, "label": label,
           "fields": sorted(ds.get_field_schema())}, open(%(out)r, "w"))
print("SETUP DONE", flush=True)
"""

DB_CHECK = r"""
import json, sys
import fiftyone as fo
import fiftyone.operators as foo
before = json.load(open(%(out)r))
ds = fo.load_dataset("db-away")
print("COUNTS len(ds)=%%d real=%%d" %% (len(ds), ds._sample_collection.count_documents({})), flush=True)
ids, score, label = ds.values(["id", "knn_disagreement", "knn_label.label"])
assert ids == before["ids"], "sample ids changed"
assert score == before["score"], "knn_disagreement changed"
assert label == before["label"], "knn_label changed"
assert sorted(ds.get_field_schema()) == before["fields"], "fields changed"
assert ds.get_run_info("knn_disagreement").config.params["k"] == 10
out = foo.execute_operator(%(uri)r, ctx={"dataset": ds, "params": {"k": 20}})
assert ds.get_run_info("knn_disagreement").config.params["k"] == 20
print("CHECK OK", out.result["num_samples"], flush=True)
"""


def _start_mongod(dbpath, port, log):
    proc = subprocess.Popen(
        [private_mongo.mongod_binary(), "--dbpath", dbpath, "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", log, "--logappend"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, "mongod exited, see " + log
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("mongod did not start")


def _run_script(script, env, timeout=300):
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True,
        timeout=timeout, cwd=os.path.dirname(TESTS),
    )
    return done.returncode, done.stdout + done.stderr


def test_database_going_away_mid_run(tmp_path):
    workdir = tempfile.mkdtemp(prefix="label-noise-mongo2-")
    dbpath = os.path.join(workdir, "db")
    os.makedirs(dbpath)
    log = os.path.join(workdir, "mongod.log")
    port = private_mongo.free_port()
    env = os.environ.copy()
    env["FIFTYONE_DATABASE_URI"] = (
        "mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=3000&connectTimeoutMS=3000" % port
    )
    out = str(tmp_path / "before.json")
    n = 10000
    mongod = _start_mongod(dbpath, port, log)
    try:
        code, text = _run_script(
            DB_SETUP % dict(tests=TESTS, n=n, dim=DIM, uri=KNN, out=out), env
        )
        assert code == 0 and "SETUP DONE" in text, text

        proc = spawn(tmp_path, "dbaway", "db-away",
                     {"k": 100, "run_key": "knn_disagreement"}, env=env)
        assert wait_for(proc, "PROGRESS 0.1 searching"), output(proc)
        mongod.send_signal(signal.SIGKILL)  # the server crashes mid-run
        mongod.wait()
        code = finish(proc, timeout=120)
        text = output(proc)
        assert code != 0, text
        error = [l for l in text.splitlines() if l.startswith("ERROR")]
        assert error, text
        assert any(
            s in error[0]
            for s in ("ServerSelectionTimeoutError", "AutoReconnect", "Connection refused",
                      "connection closed", "NetworkTimeout")
        ), error[0]

        mongod = _start_mongod(dbpath, port, log)  # same files
        code, text = _run_script(DB_CHECK % dict(out=out, uri=KNN), env)
        assert code == 0 and ("CHECK OK %d" % n) in text, text
        print([l for l in text.splitlines() if l.startswith("COUNTS")])
    finally:
        if mongod.poll() is None:
            mongod.terminate()
            try:
                mongod.wait(timeout=30)
            except subprocess.TimeoutExpired:
                mongod.kill()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
