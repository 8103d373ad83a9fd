"""End to end in a real browser: the FiftyOne App with this plugin.

Launches ``fiftyone app launch --remote`` on a free loopback port against the
private test database and drives Debian's headless Chromium with Playwright,
as a user without Python would:

1. ``find_label_issues`` from the operator browser with its defaults; the
   grid then shows the flagged samples, highest score first;
2. the "Label noise" panel: score histogram, given x suggested heatmap,
   per-class noise rate;
3. review mode with the keyboard on 5 samples (``y``, ``s``, a class digit,
   ``n``, ``y``): the database holds the verdicts and the corrections
   (originals kept); ``u`` undoes the last one exactly; ``a`` (ambiguous)
   and ``x`` (no class fits) mark the next two, labels kept, then undone;
4. an audit of 20 samples answered with the keyboard: the audit run holds
   the estimate and its Wilson interval;
5. re-score from the panel: the consensus is re-fitted from the verdicts;
6. a heatmap click: the grid shows that cell's flagged samples.

Screenshots of each step go to ``artifacts/browser/``, and to ``docs/img/``
with ``UPDATE_DOCS_IMG=1`` (the README's pictures).

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the Python
``playwright`` package; skipped with a message when chromium is missing.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.browser

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
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(REPO, "artifacts", "browser")
APP_START_TIMEOUT = 150


def _requirements():
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            "Debian chromium is not installed at %s (apt-get install -y "
            "chromium); the browser test needs it" % CHROMIUM
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install playwright)")


def _make_dataset(tmp_dir):
    import fiftyone as fo
    from PIL import Image

    from conftest import blobs

    x, y, noisy = blobs(num_classes=4, per_class=40, dim=16, noise_rate=0.15, seed=0)
    names = ["airplane", "cat", "frog", "truck"]
    colors = np.array([[66, 133, 244], [234, 67, 53], [52, 168, 83], [251, 188, 5]])
    rng = np.random.default_rng(0)
    samples = []
    for i in range(len(y)):
        path = os.path.join(tmp_dir, "img_%04d.png" % i)
        img = np.full((64, 64, 3), 245, np.uint8)
        r0, c0 = rng.integers(4, 24, 2)
        img[r0:r0 + 36, c0:c0 + 36] = colors[y[i]]
        img = np.clip(img.astype(int) + rng.integers(-12, 12, img.shape), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(path)
        samples.append(
            fo.Sample(
                filepath=path,
                ground_truth=fo.Classification(label=names[noisy[i]]),
                true_class=names[y[i]],  # what the simulated reviewer answers
                embeddings=x[i],
            )
        )
    name = "browser-%d" % os.getpid()
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.add_samples(samples, progress=False)
    ds.persistent = True
    return ds


def _free_port():
    import private_mongo

    return private_mongo.free_port()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    _requirements()
    ds = _make_dataset(str(tmp_path_factory.mktemp("browser_images")))
    port = _free_port()
    log_path = os.path.join(ARTIFACTS, "app.log")
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(log_path, "w")
    env = dict(os.environ)  # carries the private FIFTYONE_DATABASE_URI and plugins dir
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    proc = subprocess.Popen(
        [fiftyone_cli, "app", "launch", "--remote", "--port", str(port),
         "--address", "127.0.0.1", "--wait", "-1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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
        yield url, ds
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the App and its server child
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        if not ds.deleted:
            ds.delete()


DOCS_IMG = os.path.join(REPO, "docs", "img")


def _shot(page, name):
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    if os.environ.get("UPDATE_DOCS_IMG") and name != "failure.png":
        os.makedirs(DOCS_IMG, exist_ok=True)
        shutil.copy(path, os.path.join(DOCS_IMG, name))
    return path


def _run_operator(page, label, shot=None, timeout=90):
    """Operator browser (backtick) -> search -> pick ``label`` -> Execute -> Close."""
    execute = page.get_by_role("button", name="Execute")
    for attempt in range(3):
        page.mouse.click(5, 400)  # focus the App (not an input) so ` opens the browser
        page.keyboard.press("Backquote")
        try:
            page.get_by_placeholder(re.compile("search", re.I)).first.wait_for(timeout=10000)
        except Exception:
            continue
        page.keyboard.type(label.split(": ", 1)[-1])
        page.get_by_text(label, exact=True).first.click(timeout=10000)
        try:
            execute.wait_for(timeout=30000)
            break
        except Exception:
            page.keyboard.press("Escape")
            _reopen_if_lost(page)
    page.wait_for_timeout(500)
    if shot:
        _shot(page, shot)
    execute.click()
    page.get_by_role("button", name="Close").click(timeout=timeout * 1000)


def _wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s" % what)


def _grid_count(page):
    """The "N samples" count the App shows above the grid."""
    text = page.get_by_text(re.compile(r"^[\d,]+ samples?$")).first.inner_text(timeout=20000)
    return int(text.split()[0].replace(",", ""))


def _open_panel(page, label):
    """Opens the panel from the "+" of the grid's space, beside the grid."""
    page.locator("[data-cy='new-panel-btn']").first.click()
    page.get_by_text(label, exact=True).last.click()
    grid_count = page.get_by_text(re.compile(r"^[\d,]+ samples?$")).first
    try:
        grid_count.wait_for(timeout=10000)
    except Exception:
        # FiftyOne 1.10's App opens a new panel as a tab over the grid (later
        # Apps open it beside the grid): split it off to a space of its own
        page.get_by_title("Split horizontally").first.click()
        grid_count.wait_for(timeout=30000)


def _dismiss_popups(page):
    """The one-time "Explore Enterprise" popup hides the rest of the page
    from accessibility queries while it shows: dismiss it whenever it shows."""
    page.add_locator_handler(
        page.get_by_text("Accelerate your workflow"),
        lambda: page.get_by_text("Dismiss", exact=True).click(),
    )


#: the dataset each page opened last (``id(page)`` -> ``(url, dataset)``)
_OPENED = {}


def _reopen_if_lost(page):
    """The App sometimes drops the dataset after opening it ("No dataset
    selected"; operators then cannot resolve their forms): open it again."""
    if id(page) in _OPENED and page.get_by_text("No dataset selected").count():
        _open_dataset(page, *_OPENED[id(page)])


def _open_dataset(page, url, ds):
    _OPENED[id(page)] = (url, ds)
    for attempt in range(3):
        page.goto("%s/datasets/%s" % (url, ds.name))
        try:
            page.get_by_text(re.compile(r"^%d samples$" % len(ds))).first.wait_for(timeout=60000)
            return
        except Exception:
            if attempt == 2:
                raise
            page.wait_for_timeout(3000)  # the App sometimes lands on "No dataset selected"


def _panel_text(page, pattern, timeout=60):
    """Waits until some element of the page matches ``pattern``; its text."""
    found = page.get_by_text(re.compile(pattern)).first
    found.wait_for(timeout=timeout * 1000)
    return found.inner_text()


def _reviewed(page):
    m = re.search(r"reviewed (\d+) of (\d+)", _panel_text(page, r"reviewed \d+ of \d+"))
    return int(m.group(1)), int(m.group(2))


def _press(page, key, expect_reviewed, what):
    """A review key, then wait until the panel's counter says it was taken."""
    page.keyboard.press(key)
    _wait_for(lambda: _reviewed(page)[0] == expect_reviewed, timeout=60,
              what="%s: reviewed %d" % (what, expect_reviewed))
    page.wait_for_timeout(300)


def _panel_button(page, name):
    return page.get_by_role("button", name=name).first


def _click_until(page, button, selector, tries=4, timeout=30000, taken=None, resume=None):
    """Clicks ``button`` until ``selector`` shows. On FiftyOne 1.10 the panel
    re-renders beside the grid while thumbnails load and a click can land on
    the old render and be lost; the panel must still show ``selector``.
    ``taken()`` says whether the server got a click: once it has, the test
    waits for the panel instead of clicking again (or clicks ``resume``, a
    button that names the same state, if the panel shows it)."""
    for attempt in range(tries):
        if not (taken and taken()):
            _panel_button(page, button).click()
        elif resume and _panel_button(page, resume).is_visible():
            # the server started the session but the panel stayed in the
            # overview: say so in the report, and go on through its button
            warnings.warn("the panel showed the overview after %r was taken; clicked %r"
                          % (button, resume))
            _panel_button(page, resume).click()
        try:
            page.locator(selector).first.wait_for(timeout=timeout)
            return
        except Exception:
            if attempt == tries - 1:
                raise AssertionError(
                    "%r never showed after %d clicks on %r (server got the click: %s)"
                    % (selector, tries, button, taken() if taken else "unknown"))


def _watch_console(page):
    """The page's errors and warnings, to print when a step fails."""
    seen = []
    page.on("console", lambda m: seen.append("%s: %s" % (m.type, m.text[-1500:]))
            if m.type in ("error", "warning") else None)
    # a traceback's last lines name the error
    page.on("pageerror", lambda e: seen.append("pageerror: %s" % str(e)[-1500:]))
    page.on("response", lambda r: seen.append(r) if r.status >= 500 else None)
    return seen


def _diagnose(page, console):
    """What the page showed and logged: printed into the test report."""
    try:
        body = page.inner_text("body", timeout=5000)
    except Exception as e:  # the page itself may be gone
        body = "<no page text: %s>" % e
    print("---- page text (last 2,000 characters)\n%s" % body[-2000:])
    lines = []
    for entry in console[-30:]:
        if isinstance(entry, str):
            lines.append(entry)
            continue
        try:  # a server error: the end of its body (the traceback)
            lines.append("HTTP %d %s: %s" % (entry.status, entry.url, entry.text()[-1500:]))
        except Exception as e:
            lines.append("HTTP %d %s (%s)" % (entry.status, entry.url, e))
    print("---- console errors and warnings (last 30)\n%s" % "\n".join(lines))


def test_review_workflow_in_the_app(app):
    import fiftyone.operators as foo
    from fiftyone import ViewField as F
    from playwright.sync_api import sync_playwright

    url, ds = app
    loaded = type(foo.get_operator("@label-noise/curation/record_label_verdict")).__module__
    review = sys.modules[loaded[: loaded.rindex(".operators.")] + ".store.review"]
    classes = ["airplane", "cat", "frog", "truck"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        console = _watch_console(page)
        try:
            page.set_default_timeout(30000)
            _dismiss_popups(page)
            _open_dataset(page, url, ds)

            # 1. one operator, its defaults: every detector and the consensus
            _run_operator(page, "Label noise: find label issues (all detectors + consensus)",
                          shot="01_find_label_issues_form.png", timeout=300)
            ds.reload()
            num_flagged = ds.count_values("noise_flagged").get(True, 0)
            assert 0 < num_flagged < len(ds)
            assert {"knn_disagreement", "label_quality", "dupes", "consensus"} <= set(ds.list_runs())
            # ...and the App shows the flagged samples, highest score first
            _wait_for(lambda: _grid_count(page) == num_flagged, what="grid = %d flagged" % num_flagged)
            page.wait_for_timeout(2000)
            _shot(page, "02_flagged_grid.png")

            # 2. the panel: histogram, heatmap, per-class rates
            _open_panel(page, "Label noise")
            _panel_text(page, r"flagged \(noise_score ≥")
            page.get_by_text("Given × suggested label").first.wait_for()
            page.get_by_text(re.compile("share of wrong labels per class", re.I)).first.wait_for()
            page.wait_for_timeout(5000)  # the grid's thumbnails reload beside the new panel
            _shot(page, "03_panel_overview.png")

            # 3. review mode with the keyboard on 5 samples
            assert review.load_queue(ds) is None
            _click_until(page, "Start review", "[data-cy='label-noise-image']",
                         taken=lambda: review.load_queue(ds) is not None,
                         resume=re.compile(r"^Resume review"))
            page.locator("[data-cy='label-noise-keys']").first.wait_for()
            assert _reviewed(page) == (0, num_flagged)
            queue = review.load_queue(ds)["ids"]
            order = ds.match(F("noise_flagged") == True).sort_by("noise_score", reverse=True).values("id")  # noqa: E712
            assert queue == order
            given = dict(zip(*ds.select(queue).values(["id", "ground_truth.label"])))
            sugg = dict(zip(*ds.select(queue).values(["id", "suggested_label.label"])))
            relabel_to = next(c for c in classes if c != given[queue[2]])
            plan = [
                ("y", "correct"),
                ("s", "suggestion") if sugg[queue[1]] != given[queue[1]] else ("y", "correct"),
                (str(classes.index(relabel_to) + 1), "relabel"),
                ("n", "skip"),
                ("y", "correct"),
            ]
            for k, (key, _) in enumerate(plan):
                if k == 2:
                    _shot(page, "04_review.png")
                _press(page, key, k + 1, "review key %r" % key)
            ds.reload()
            for sid, (key, verdict) in zip(queue, plan):
                sample = ds[sid]
                assert sample.label_review.verdict == verdict
                if verdict == "correct":
                    assert sample.label_verified is True and sample.ground_truth.label == given[sid]
                elif verdict == "skip":
                    assert sample.label_verified is None
                else:
                    assert sample.label_verified is False
                    assert sample.ground_truth_original.label == given[sid]
                    assert sample.ground_truth_correction.source == "review"
                    want = sugg[sid] if verdict == "suggestion" else relabel_to
                    assert sample.ground_truth.label == want
            # undo the last verdict: exactly as before it
            _press(page, "u", 4, "undo")
            ds.reload()
            assert ds[queue[4]].label_review is None and ds[queue[4]].label_verified is None
            assert ds[queue[3]].label_review.verdict == "skip"
            page.wait_for_timeout(1000)
            _shot(page, "05_review_undo.png")
            if len(queue) >= 6:  # a: ambiguous, x: no class fits; labels stay; undo both
                _press(page, "a", 5, "review key 'a'")
                _press(page, "x", 6, "review key 'x'")
                ds.reload()
                amb, exc = ds[queue[4]], ds[queue[5]]
                assert amb.label_review.verdict == "ambiguous" and amb.label_verified is None
                assert amb.ground_truth.label == given[queue[4]]
                if sugg[queue[4]] != given[queue[4]]:  # the suggestion is the second class
                    assert amb.label_alternatives.classifications[0].label == sugg[queue[4]]
                assert exc.label_review.verdict == "exclude" and exc.ground_truth.label == given[queue[5]]
                page.wait_for_timeout(1000)
                _shot(page, "09_review_ambiguous_exclude.png")
                _press(page, "u", 5, "undo exclude")
                _press(page, "u", 4, "undo ambiguous")
                ds.reload()
                assert ds[queue[4]].label_review is None and ds[queue[5]].label_review is None

            # 4. an audit of 20, answered with the keyboard (the true class)
            _panel_button(page, "← Overview").click()
            size = page.locator("xpath=//*[normalize-space(text())='Audit size']/following::input[1]").first
            size.fill("20")
            size.press("Tab")
            page.wait_for_timeout(1500)
            _panel_button(page, "Start audit").click()
            _panel_text(page, r"Audit · reviewed")
            ds.reload()
            audit_ids = list(ds.load_run_results("label_audit", cache=False).sample_ids)
            assert len(audit_ids) == 20
            truth = dict(zip(*ds.select(audit_ids).values(["id", "true_class"])))
            done, total = _reviewed(page)
            assert total == 20
            for sid in audit_ids:
                if ds[sid].label_review is not None:
                    continue  # reviewed above: counted already
                label = ds[sid].ground_truth.label
                key = "y" if truth[sid] == label else str(classes.index(truth[sid]) + 1)
                done += 1
                _press(page, key, done, "audit key %r" % key)
            assert done == 20
            ds.reload()
            est = ds.load_run_results("label_audit", cache=False).estimate
            assert est["n"] == 20 - sum(1 for i in audit_ids if ds[i].label_review.verdict == "skip")
            text = _panel_text(page, r"Estimated share of wrong labels: [\d.]+%")
            assert "%.1f%%" % (100 * est["rate"]) in text
            page.wait_for_timeout(1000)
            _shot(page, "06_audit.png")

            # 5. re-score from the panel
            before = ds.get_run_info("consensus").timestamp
            _panel_button(page, "Re-score").click()
            _panel_text(page, r"last re-score: \d+ flagged", timeout=120)
            ds.reload()
            assert ds.get_run_info("consensus").timestamp > before
            info = ds.get_run_info("consensus").config
            verified = ds.count_values("label_verified")
            assert (info.num_verified["correct"] + info.num_verified["mislabeled"]
                    == verified.get(True, 0) + verified.get(False, 0))
            results = ds.load_run_results("consensus", cache=False)
            assert results.noise_estimate["audit_run"] == "label_audit"
            page.wait_for_timeout(1000)
            _shot(page, "07_rescore.png")

            # 6. the heatmap: a click sets the grid to that cell's samples
            _panel_button(page, "← Overview").click()
            heat = page.locator(".js-plotly-plot").filter(has_text="Given × suggested").first
            heat.scroll_into_view_if_needed()
            flagged_now = ds.match(F("noise_score") >= _threshold(page))
            pairs = flagged_now.count_values(F("ground_truth.label").concat("→", F("suggested_label.label")))
            pairs = {k: v for k, v in pairs.items() if k}
            (g, s), n = max(((k.split("→"), v) for k, v in pairs.items()), key=lambda kv: kv[1])
            box = heat.locator(".nsewdrag").first.bounding_box()
            names = sorted({c for k in pairs for c in k.split("→")} | _heat_classes(ds))
            col, row = names.index(s), names.index(g)
            page.mouse.click(box["x"] + (col + 0.5) * box["width"] / len(names),
                             box["y"] + (row + 0.5) * box["height"] / len(names))
            _wait_for(lambda: _grid_count(page) == n, what="grid = %d samples given %s, suggested %s" % (n, g, s))
            _panel_text(page, r"Grid: the %d flagged items given" % n)
            page.wait_for_timeout(2500)
            _shot(page, "08_heatmap_click.png")
        except Exception:
            _shot(page, "failure.png")
            _diagnose(page, console)
            raise
        finally:
            browser.close()


def _threshold(page):
    text = _panel_text(page, r"flagged \(noise_score ≥ [\d.]+\)")
    return float(re.search(r"≥ ([\d.]+)\)", text).group(1))


def _heat_classes(ds):
    """Classes on the heatmap's axes (those of the consensus' pair estimate)."""
    est = ds.load_run_results("consensus", cache=False).noise_estimate or {}
    return {c for g, t, _ in est.get("pairs") or [] for c in (g, t)}
