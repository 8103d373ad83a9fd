"""End to end in a real browser: the FiftyOne App with this plugin.

Launches ``fiftyone app launch --remote`` on a free loopback port against the
private test database, drives Debian's headless Chromium with Playwright:
runs ``compute_knn_disagreement`` and ``compute_noise_score`` through the
operator browser, opens the "Label noise" panel, moves the threshold, checks
the number of samples the grid shows, tags from the panel and checks the tags
in the database. Screenshots go to ``artifacts/browser/``.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the Python
``playwright`` package; skipped with a message when chromium is missing.
"""

import os
import re
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app_server import ARTIFACTS, CHROMIUM, dataset_page, launched_app  # noqa: E402

pytestmark = pytest.mark.browser



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


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    _requirements()
    ds = _make_dataset(str(tmp_path_factory.mktemp("browser_images")))
    with launched_app(ds) as url:
        yield url, ds


def _shot(page, name):
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    return path


def _open_form(page, label):
    """Operator browser (backtick) -> search -> pick ``label``: its form."""
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
    return execute


def _run_operator(page, label, shot=None):
    """:func:`_open_form` -> Execute -> Close."""
    execute = _open_form(page, label)
    page.wait_for_timeout(500)
    if shot:
        _shot(page, shot)
    execute.click()
    page.get_by_role("button", name="Close").click(timeout=90000)


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


def _flagged(page):
    """(N flagged, threshold) as the panel's counts line shows them."""
    text = page.get_by_text(re.compile(r"flagged \(noise_score > ")).first.inner_text()
    m = re.search(r"([\d,]+) flagged \(noise_score > ([\d.]+)\)", text)
    return int(m.group(1).replace(",", "")), float(m.group(2))


def test_curation_workflow_in_the_app(app):
    from fiftyone import ViewField as F

    url, ds = app
    n = len(ds)
    with dataset_page(url, ds, "%d samples" % n) as page:
        # 1. a detector through its form in the operator browser
        _run_operator(page, "Label noise: kNN disagreement", shot="01_knn_form.png")
        ds.reload()
        assert ds.count("knn_disagreement") == n
        assert ds.count("knn_label") == n
        assert "knn_disagreement" in ds.list_runs()

        # 2. the consensus score, also through the App
        _run_operator(page, "Label noise: consensus noise score", shot="02_noise_score_form.png")
        ds.reload()
        assert ds.count("noise_score") == n
        assert ds.get_run_info("consensus").config.inputs["knn_disagreement"]

        # 3. the panel
        _open_panel(page, "Label noise")
        counts = page.get_by_text(re.compile(r"flagged \(noise_score > [\d.]+\)"))
        counts.first.wait_for(timeout=60000)
        _wait_for(lambda: _grid_count(page) == _flagged(page)[0], what="grid = flagged")
        page.wait_for_timeout(2000)
        _shot(page, "03_panel_open.png")
        start_threshold = _flagged(page)[1]

        # move the threshold slider with the mouse: near the minimum...
        rail = page.locator(
            "xpath=//*[normalize-space(text())='Threshold']"
            "/following::*[contains(@class,'MuiSlider-root')][1]"
        ).first.bounding_box()

        def slide_to(fraction):
            page.mouse.click(rail["x"] + fraction * rail["width"], rail["y"] + rail["height"] / 2)

        slide_to(0.01)
        lo = ds.bounds("noise_score")[0]
        _wait_for(lambda: _flagged(page)[1] < start_threshold - 0.3, what="threshold to go down")
        page.wait_for_timeout(1500)
        expected_low = ds.match(F("noise_score") > _flagged(page)[1]).count()
        _wait_for(lambda: _grid_count(page) == expected_low, what="grid after moving down")

        # ...then to about the middle
        slide_to(0.5)
        _wait_for(lambda: _flagged(page)[1] > lo + 0.2, what="threshold to move up")
        page.wait_for_timeout(2500)  # let the last change settle
        flagged, threshold = _flagged(page)
        assert threshold != start_threshold
        expected = ds.match(F("noise_score") > threshold).count()
        assert flagged == expected
        assert 0 < expected < expected_low
        _wait_for(lambda: _grid_count(page) == expected, what="grid to show %d samples" % expected)
        page.wait_for_timeout(3000)  # let the grid thumbnails load
        _shot(page, "04_panel_threshold.png")

        # tag from the panel: the flagged samples get the tag in the DB
        page.get_by_role("button", name="Tag flagged").click()
        _wait_for(
            lambda: ds.match_tags("noisy").count() == expected,
            what="%d samples tagged 'noisy' in the database" % expected,
        )
        assert ds.match_tags("noisy").bounds("noise_score")[0] > threshold
        assert ds.match_tags("noisy", bool=False).match(F("noise_score") > threshold).count() == 0
        page.get_by_text(
            re.compile(r"%d flagged .* %d tagged" % (expected, expected))
        ).first.wait_for(timeout=30000)
        page.wait_for_timeout(2000)
        _shot(page, "05_panel_tagged.png")
