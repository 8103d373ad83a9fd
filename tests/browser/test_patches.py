"""Objects in a real browser: a detection dataset, its patches view, the
detectors run from the operator browser, the object outputs in the grid.

Uses the App of ``test_app.py`` (its ``app`` fixture: ``fiftyone app launch
--remote`` on the private database, Debian chromium via Playwright) and
opens another dataset there: the shipped pasted-CIFAR-10N subset
(``demo/cifar10n-objects``, first 30 images). The test switches to the
patches view with the App's "patches" button, runs kNN disagreement and
the consensus through their forms, filters the patches grid with the
sidebar filter of the object attribute ``ground_truth.noise_flagged``, then
runs ``find_label_issues`` (re-score), whose end view is the flagged objects
sorted by ``ground_truth.noise_score``: the first patch the App opens is the
top-scored object. Screenshots go to ``artifacts/browser/objects_*.png``
(and ``docs/img/`` with ``UPDATE_DOCS_IMG=1``).
"""

import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_app import (  # noqa: E402,F401  (app: the App fixture)
    ARTIFACTS, REPO, _dismiss_popups, _open_dataset, _run_operator, _shot, _wait_for, app,
)

pytestmark = pytest.mark.browser
NUM_IMAGES = 30


@pytest.fixture(scope="module")
def objects_app(app):
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from make_detection_dataset import load_objects

    url, _ = app
    name = "browser-objects-%d" % os.getpid()
    full = load_objects(name + "-all", os.path.join(REPO, "demo", "cifar10n-objects"))
    ds = full.limit(NUM_IMAGES).clone(name)
    full.delete()
    ds.persistent = True
    yield url, ds
    ds.delete()


def _count(page, what):
    """The "N patches" / "N of M patches" count above the grid."""
    text = page.get_by_text(re.compile(r"^[\d,]+( of [\d,]+)? %s$" % what)).first.inner_text(timeout=20000)
    return int(text.split()[0].replace(",", ""))


def _open_patches(page, url, ds):
    """The dataset's page, then its patches view of ``ground_truth``."""
    for attempt in range(3):
        _open_dataset(page, url, ds)  # retries "No dataset selected"
        try:
            page.locator("[data-cy='action-clips-patches']").first.click()
            page.get_by_text("ground_truth", exact=True).last.click(timeout=10000)
            page.get_by_text(re.compile(r"^[\d,]+ patches$")).first.wait_for(timeout=30000)
            return
        except Exception:
            if attempt == 2:
                raise


def _rescore(page):
    """find_label_issues from the operator browser, "Re-score only" ticked."""
    title = "Label noise: find label issues (all detectors + consensus)"
    page.mouse.click(5, 400)  # the App, not an input, has the focus
    page.keyboard.press("Backquote")
    page.get_by_placeholder(re.compile("search", re.I)).first.fill("find label issues")
    page.get_by_text(title, exact=True).first.click()
    page.get_by_text("Re-score only", exact=True).first.click()
    page.get_by_text(re.compile(r"Re-fits 'consensus'")).first.wait_for()
    page.get_by_role("button", name="Execute").click()
    page.get_by_role("button", name="Close").click(timeout=90000)


def test_patches_view_in_the_app(objects_app):
    from fiftyone import ViewField as F
    from playwright.sync_api import sync_playwright

    from test_app import CHROMIUM, CHROMIUM_ARGS

    url, ds = objects_app
    num_objects = ds.count("ground_truth.detections")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.set_default_timeout(30000)
        _dismiss_popups(page)
        try:
            # 1. the App's patches button: one grid item per object
            _open_patches(page, url, ds)
            _wait_for(lambda: _count(page, "patches") == num_objects, what="the patches grid")

            # 2. a detector and the consensus through their forms, on the objects
            _run_operator(page, "Label noise: kNN disagreement", shot="objects_01_knn_form.png")
            ds.reload()
            assert ds.count("ground_truth.detections.knn_disagreement") == num_objects
            assert "knn_disagreement" not in ds.get_field_schema()  # not on the images
            assert ds.get_run_info("knn_disagreement").config.patches_field == "ground_truth"
            _run_operator(page, "Label noise: consensus noise score")
            ds.reload()
            assert ds.count("ground_truth.detections.noise_score") == num_objects
            flagged = ds.to_patches("ground_truth").match(F("ground_truth.noise_flagged") == True)  # noqa: E712
            assert 0 < flagged.count() < num_objects

            # 3. the object attribute filters the patches grid (App sidebar)
            page.locator("[data-cy='sidebar-field-arrow-enabled-ground_truth']").first.click()
            flag_filter = page.locator("[data-cy='categorical-filter-ground_truth.noise_flagged']")
            flag_filter.locator("[data-cy='checkbox-True']").first.click()
            _wait_for(lambda: _count(page, "patches") == flagged.count(), what="grid of flagged objects")
            page.wait_for_timeout(2500)  # thumbnails
            _shot(page, "objects_patches_filter.png")

            # 4. find_label_issues (re-score) ends on the flagged objects,
            # sorted by the object attribute noise_score
            _rescore(page)
            flagged = ds.to_patches("ground_truth").match(F("ground_truth.noise_flagged") == True)  # noqa: E712
            _wait_for(lambda: page.get_by_text("SortBy", exact=True).count() > 0, what="SortBy stage")
            _wait_for(lambda: _count(page, "patches") == flagged.count(), what="flagged objects, sorted")
            page.wait_for_timeout(2500)
            _shot(page, "objects_patches_sorted.png")
            top_score = flagged.bounds("ground_truth.noise_score")[1]
            top_ids = set(flagged.match(F("ground_truth.noise_score") == top_score).values("id"))
            page.locator("[data-cy='looker']").first.click()
            shown = page.locator("[data-cy='sidebar-entry-id']").first
            shown.wait_for(timeout=30000)
            assert shown.get_attribute("title") in top_ids
        except Exception:
            page.screenshot(path=os.path.join(ARTIFACTS, "objects_failure.png"))
            raise
        finally:
            browser.close()
