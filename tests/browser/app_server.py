"""The FiftyOne App of a browser test: ``fiftyone app launch --remote`` on a
free loopback port, against the private test database (the environment
carries ``FIFTYONE_DATABASE_URI`` and the plugins dir)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(REPO, "artifacts", "browser")
APP_START_TIMEOUT = 150


def free_port():
    import private_mongo

    return private_mongo.free_port()


@contextlib.contextmanager
def launched_app(dataset, log_name="app.log"):
    """Yields the App's URL; stops the App (and its server child) and
    deletes ``dataset`` afterwards."""
    port = free_port()
    os.makedirs(ARTIFACTS, exist_ok=True)
    log_path = os.path.join(ARTIFACTS, log_name)
    log = open(log_path, "w")
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    proc = subprocess.Popen(
        [fiftyone_cli, "app", "launch", "--remote", "--port", str(port),
         "--address", "127.0.0.1", "--wait", "-1"],
        env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + APP_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the App exited; see %s" % log_path)
            try:
                urllib.request.urlopen(url, timeout=2).read(100)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the App did not start in %d s" % APP_START_TIMEOUT)
                time.sleep(1)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        if not dataset.deleted:
            dataset.delete()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def dataset_page(url, dataset, count_text, failure_shot="failure.png"):
    """Headless Chromium on the App page of ``dataset``, once the grid shows
    ``count_text`` (e.g. "160 samples") and the one-time popup is gone.
    A failure inside saves ``failure_shot`` to :data:`ARTIFACTS`."""
    import re

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        try:
            page.set_default_timeout(30000)
            page.goto("%s/datasets/%s" % (url, dataset.name))
            page.get_by_text(re.compile(r"^%s$" % re.escape(count_text))).first.wait_for(timeout=60000)
            try:
                page.get_by_text("Dismiss", exact=True).click(timeout=5000)  # "Explore Enterprise"
            except Exception:
                pass
            yield page
        except Exception:
            page.screenshot(path=os.path.join(ARTIFACTS, failure_shot))
            raise
        finally:
            browser.close()
