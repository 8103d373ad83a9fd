"""Objects in a real browser: a detection dataset, its patches view, the
detectors run from the operator browser, the object outputs in the grid.

The shipped pasted-CIFAR-10N subset (``demo/cifar10n-objects``, first 30
images) is opened in the App (``fiftyone app launch --remote``, private
database, Debian chromium via Playwright). The test switches to the patches
view with the App's "patches" button, runs kNN disagreement and the
consensus through their forms, filters the patches grid with the sidebar
filter of the object attribute ``ground_truth.noise_flagged``, then runs
``find_label_issues`` (re-score) whose end view is the flagged objects
sorted by ``ground_truth.noise_score``; the first patch the App opens is
the top-scored object. Screenshots go to ``artifacts/browser/``
(``objects_*.png``).
"""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app_server import REPO, dataset_page, launched_app  # noqa: E402
from test_app import _open_form, _requirements, _run_operator, _shot, _wait_for  # noqa: E402

pytestmark = pytest.mark.browser
NUM_IMAGES = 30


@pytest.fixture(scope="module")
def objects_app():
    _requirements()
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    from make_detection_dataset import load_objects

    name = "browser-objects-%d" % os.getpid()
    full = load_objects(name + "-all", os.path.join(REPO, "demo", "cifar10n-objects"))
    ds = full.limit(NUM_IMAGES).clone(name)
    full.delete()
    ds.persistent = True
    with launched_app(ds, "app_objects.log") as url:
        yield url, ds


def _count(page, what):
    """The "N patches" / "N of M patches" count above the grid."""
    text = page.get_by_text(re.compile(r"^[\d,]+( of [\d,]+)? %s$" % what)).first.inner_text(timeout=20000)
    return int(text.split()[0].replace(",", ""))


def test_patches_view_in_the_app(objects_app):
    from fiftyone import ViewField as F
    url, ds = objects_app
    num_objects = ds.count("ground_truth.detections")
    with dataset_page(url, ds, "%d samples" % NUM_IMAGES, "objects_failure.png") as page:
        # 1. the App's patches button: one grid item per object
        page.locator("[data-cy='action-clips-patches']").first.click()
        page.get_by_text("ground_truth", exact=True).last.click()
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
        patches = ds.to_patches("ground_truth")
        num_flagged = patches.match(F("ground_truth.noise_flagged") == True).count()  # noqa: E712
        assert 0 < num_flagged < num_objects

        # 3. the object attribute filters the patches grid (App sidebar)
        page.locator("[data-cy='sidebar-field-arrow-enabled-ground_truth']").first.click()
        flag_filter = page.locator("[data-cy='categorical-filter-ground_truth.noise_flagged']")
        flag_filter.locator("[data-cy='checkbox-True']").first.click()
        _wait_for(lambda: _count(page, "patches") == num_flagged, what="grid of flagged objects")
        page.wait_for_timeout(2500)  # thumbnails
        _shot(page, "objects_02_filtered.png")

        # 4. find_label_issues (re-score) ends on the flagged objects,
        # sorted by the object attribute noise_score
        execute = _open_form(page, "Label noise: find label issues (all detectors + consensus)")
        page.get_by_text("Re-score only", exact=True).first.click()
        page.get_by_text(re.compile(r"Re-fits 'consensus'")).first.wait_for()
        execute.click()
        page.get_by_role("button", name="Close").click(timeout=90000)
        patches = ds.to_patches("ground_truth")
        flagged = patches.match(F("ground_truth.noise_flagged") == True)  # noqa: E712
        num_flagged = flagged.count()
        _wait_for(lambda: page.get_by_text("SortBy", exact=True).count() > 0, what="SortBy stage")
        _wait_for(lambda: _count(page, "patches") == num_flagged, what="flagged objects, sorted")
        page.wait_for_timeout(2500)
        _shot(page, "objects_03_sorted.png")
        top_score = flagged.bounds("ground_truth.noise_score")[1]
        top_ids = set(flagged.match(F("ground_truth.noise_score") == top_score).values("id"))
        first = page.locator("[data-cy='looker']").first
        first.click()
        shown = page.locator("[data-cy='sidebar-entry-id']").first
        shown.wait_for(timeout=30000)
        assert shown.get_attribute("title") in top_ids
        page.wait_for_timeout(1500)
        _shot(page, "objects_04_top_object.png")
