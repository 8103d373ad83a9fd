"""The "Label noise" panel's logic without the App: charts by aggregation,
review and audit sessions (verdicts, undo, resume, stale keys), the heatmap
click, re-score, on samples and on a patches view.

Panel events are called on the registered panel with a small stand-in for
FiftyOne's execution context (state, data, ops recorded); the real App is
driven in tests/browser/test_app.py.
"""

import re
import sys

import numpy as np
import pytest

from conftest import operator, plugin_module


class State(dict):
    def __getattr__(self, key):
        return self.get(key)


class Panel:
    def __init__(self, state):
        self.state = state
        self.data = {}

    def set_state(self, key, value):
        self.state[key] = value

    def set_data(self, key, value):
        self.data[key] = value


class Ops:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))

        return record

    def last(self, name):
        found = [c for c in self.calls if c[0] == name]
        return found[-1] if found else None


class Ctx:
    """What a panel event sees: dataset, view, selection, params, panel, ops."""

    def __init__(self, dataset, view=None, state=None):
        self.dataset = dataset
        self.view = view if view is not None else dataset.view()
        self.selected = []
        self.params = {}
        self.panel = Panel(State(state or {}))
        self.ops = Ops()
        self.delegated = False

    def event(self, panel, method, **params):
        self.params = params
        self.ops = Ops()
        getattr(panel, method)(self)
        shown = self.ops.last("set_view")
        if shown is not None:  # the App then sends this view with the next event
            self.view = shown[1][0] if shown[1] else shown[2]["view"]
        rendered = panel.render(self)
        _check_handlers(panel, rendered)
        return rendered


def _check_handlers(panel, rendered):
    """Every event the layout names (``<panel uri>#<method>``, the function's
    ``__name__``) is a method of the panel: the App calls it by that name,
    and FiftyOne 1.10 crashes the panel on a name it does not find."""
    import json

    prefix = panel.uri + "#"
    text = json.dumps(rendered.to_json())
    names = set(re.findall(re.escape(prefix) + r"([A-Za-z0-9_]+)", text))
    assert names, "the layout names no event"
    missing = sorted(n for n in names if not callable(getattr(panel, n, None)))
    assert not missing, "the layout names events the panel lacks: %s" % missing


def _panel():
    return operator("label_noise_panel")


def _module(name):
    import sys

    return sys.modules[type(operator(name)).__module__]


@pytest.fixture
def scored(blob_dataset):
    ds = blob_dataset(num_classes=4, per_class=50, noise_rate=0.2, class_names=["cat", "dog", "frog", "ship"])
    operator("find_label_issues")(ds, preset="custom", detectors="knn_disagreement,label_quality")
    return ds


def _props(rendered):
    return rendered.to_json()["type"]["properties"]


def test_overview_charts_by_aggregation(scored):
    from fiftyone import ViewField as F

    ds = scored
    p = _panel()
    ctx = Ctx(ds)
    p.on_load(ctx)
    state = ctx.panel.state
    assert state.score_field == "noise_score" and state.label_field == "ground_truth"
    # the threshold starts at the consensus' own cut: beyond it = its flags
    flagged = ds.match(F("noise_score") >= state.threshold)
    assert flagged.count() == ds.count_values("noise_flagged")[True]
    hist = ctx.panel.data["histogram"][0]
    assert sum(hist["y"]) == len(ds) and min(hist["x"]) > 0 and max(hist["x"]) < 1  # bins over [0, 1]
    # heatmap: per (given, suggested) the flagged counts, or the estimate
    est = ds.load_run_results("consensus", cache=False).noise_estimate
    heat = ctx.panel.data["heatmap"][0]
    classes = heat["x"]
    assert classes == ["cat", "dog", "frog", "ship"]
    if est.get("pairs"):
        pairs = {(g, t): c for g, t, c in est["pairs"]}
        assert heat["z"][0][1] == pairs.get(("cat", "dog"), 0)
    ctx.event(p, "on_change_heatmap_cells", value="flagged")
    heat = ctx.panel.data["heatmap"][0]
    given, sugg = flagged.values(["ground_truth.label", "suggested_label.label"])
    for i, g in enumerate(classes):
        for j, s in enumerate(classes):
            n = sum(1 for a, b in zip(given, sugg) if (a, b) == (g, s))
            assert (heat["z"][i][j] or 0) == n
    bars = ctx.panel.data["class_rates"][0]
    assert bars["x"] == classes
    assert bars["y"] == pytest.approx([100 * est["per_class"][c] for c in classes])
    out = p.render(ctx)
    _check_handlers(p, out)
    rendered = _props(out)
    assert {"histogram", "heatmap", "class_rates", "threshold", "review_row", "audit_row"} <= set(rendered)


def test_chart_helpers(scored):
    from fiftyone import ViewField as F

    charts = plugin_module("operators.panel.charts")
    ds = scored
    view = charts.beyond(ds, None, "noise_score", 0.6)
    scores = view.values("noise_score")
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.6
    assert len(scores) == ds.match(F("noise_score") >= 0.6).count()
    low = charts.beyond(ds, None, "label_quality", 0.2, higher=charts.higher_is_noisier(ds, None, "label_quality"))
    assert max(low.values("label_quality")) <= 0.2
    trace, bounds = charts.score_histogram(ds, None, "knn_disagreement")  # not a probability
    assert sum(trace["y"]) == ds.count("knn_disagreement")
    assert bounds == (0.0, 1.0) or bounds == tuple(ds.bounds("knn_disagreement"))
    # a heatmap from counts alone (no estimate), and the estimate's hover text
    trace, what = charts.pair_heatmap({("a", "b"): 3, ("b", "a"): 1}, None)
    assert what == "flagged items" and trace["z"] == [[None, 3], [1, None]]
    trace, what = charts.pair_heatmap({("a", "b"): 3}, {"pairs": [["a", "b", 7], ["b", "c", 2]]})
    assert what == "estimated wrong labels" and trace["x"] == ["a", "b", "c"]
    assert trace["z"][0][1] == 7 and "flagged: 3" in trace["text"][0][1]
    assert charts.pair_heatmap({}, None) == (None, None)


def test_keys_and_audit_text():
    review = plugin_module("operators.panel.review")
    classes = ["cat", "dog"]
    assert review.key_action("Y", classes) == ("correct", None)
    assert review.key_action("2", classes) == ("relabel", "dog")
    assert review.key_action("3", classes) == (None, None)
    assert review.key_action("u", classes) == ("undo", None)
    assert "1 cat · 2 dog" in review.key_hint(classes)
    text = review.audit_summary({
        "n": 40, "wrong": 4, "rate": 0.1, "low": 0.04, "high": 0.23, "population": 1000,
        "count_low": 40, "count_high": 230,
        "per_class": {"cat": {"n": 20, "wrong": 3, "rate": 0.15, "low": 0.05, "high": 0.36}},
        "too_few": {"dog": 4},
    })
    assert "10.0%" in text and "4.0%–23.0%" in text and "40–230 of 1,000" in text
    assert "| cat | 20 | 3 | 15% | 5%–36% |" in text and "dog (4)" in text
    assert review.audit_summary({"n": 0}) == "No audit verdict yet."


def test_heatmap_click_sets_the_grid(scored):
    ds = scored
    p = _panel()
    ctx = Ctx(ds)
    p.on_load(ctx)
    ctx.event(p, "on_change_heatmap_cells", value="flagged")
    heat = ctx.panel.data["heatmap"][0]
    i, j = np.unravel_index(np.argmax(np.nan_to_num(np.array(heat["z"], float))), (4, 4))
    g, s = heat["y"][i], heat["x"][j]
    ctx.event(p, "on_heatmap_click", x=s, y=g)
    view = ctx.view
    assert view.count() == heat["z"][i][j] > 0
    assert set(view.values("ground_truth.label")) == {g}
    assert set(view.values("suggested_label.label")) == {s}
    scores = view.values("noise_score")
    assert scores == sorted(scores, reverse=True)
    assert ctx.panel.state.pair == [g, s, view.count()]


def test_review_session_keys_undo_resume(scored):
    ds = scored
    p = _panel()
    ctx = Ctx(ds)
    p.on_load(ctx)
    n_flagged = ds.count_values("noise_flagged")[True]
    out = _props(ctx.event(p, "start_review"))
    assert ctx.panel.state.mode == "review"
    order = ds.match({"noise_flagged": True}).sort_by("noise_score", reverse=True).values("id")
    assert ctx.view.values("id") == order  # the grid shows the queue
    assert "reviewed **0** of **%d**" % n_flagged in out["review_top"]["type"]["properties"]["review_counter"]["default"]
    keys = out["review_keys"]["view"]
    assert keys["component"] == "LabelNoiseReviewKeys" and keys["item_id"] == order[0]
    assert keys["on_key"].endswith("#on_review_key") and "y" in keys["keys"]
    image = out["review_image"]["view"]
    assert image["component"] == "LabelNoiseImage" and image["filepath"] == ds[order[0]].filepath

    truth = dict(zip(ds.values("id"), ds.values("clean_label.label")))
    given = dict(zip(ds.values("id"), ds.values("ground_truth.label")))
    sugg = dict(zip(ds.values("id"), ds.values("suggested_label.label")))
    classes = ["cat", "dog", "frog", "ship"]
    # y on the first, s on the second (when it has a suggestion), a digit on the third
    ctx.event(p, "on_review_key", key="y", item_id=order[0])
    assert ds[order[0]].label_verified is True
    ctx.event(p, "on_review_key", key="s", item_id=order[1])
    assert ds[order[1]].ground_truth.label == sugg[order[1]]
    assert ds[order[1]].ground_truth_original.label == given[order[1]]
    assert ds[order[1]].label_verified is False
    other = next(c for c in classes if c != given[order[2]])
    ctx.event(p, "on_review_key", key=str(classes.index(other) + 1), item_id=order[2])
    assert ds[order[2]].ground_truth.label == other and ds[order[2]].label_review.verdict == "relabel"
    # a stale key (the item already decided) changes nothing
    ctx.event(p, "on_review_key", key="y", item_id=order[2])
    assert ds[order[3]].label_verified is None and ds[order[2]].label_verified is False
    ctx.event(p, "on_review_key", key="n", item_id=order[3])
    assert ds[order[3]].label_review.verdict == "skip" and ds[order[3]].label_verified is None
    # undo: the skip, then the relabel, exactly
    ctx.event(p, "on_review_key", key="u")
    ctx.event(p, "on_review_key", key="u")
    assert ds[order[2]].ground_truth.label == given[order[2]]
    assert ds[order[2]].ground_truth_original is None and ds[order[2]].label_review is None
    out = _props(p.render(ctx))
    assert out["review_keys"]["view"]["item_id"] == order[2]
    assert "reviewed **2** of" in out["review_top"]["type"]["properties"]["review_counter"]["default"]
    # leave, and resume where it stopped (the queue is in the dataset's store)
    ctx.event(p, "leave_review")
    assert ctx.panel.state.mode == "overview"
    fresh = Ctx(ds)
    p.on_load(fresh)
    row = _props(p.render(fresh))["review_row"]["type"]["properties"]
    assert row["resume_review"]["view"]["label"] == "Resume review (reviewed 2 of %d)" % n_flagged
    out = _props(fresh.event(p, "resume_review"))
    assert out["review_keys"]["view"]["item_id"] == order[2]
    assert truth  # (clean labels available to the checks above)


def test_review_sources_selected_and_view(scored):
    ds = scored
    p = _panel()
    ctx = Ctx(ds)
    p.on_load(ctx)
    picked = ds.take(5, seed=2).values("id")
    ctx.selected = picked
    ctx.event(p, "on_change_review_source", value="selected")
    ctx.event(p, "start_review")
    queue = plugin_module("store.review").load_queue(ds)
    scores = dict(zip(*ds.select(picked).values(["id", "noise_score"])))
    assert queue["ids"] == sorted(picked, key=lambda i: -scores[i])  # largest score first
    assert queue["classes"] == ["cat", "dog", "frog", "ship"]
    ctx.view = ds.match({"ground_truth.label": "dog"}).sort_by("filepath")
    ctx.event(p, "on_change_review_source", value="view")
    ctx.event(p, "start_review")
    assert plugin_module("store.review").load_queue(ds)["ids"] == ds.match(
        {"ground_truth.label": "dog"}).sort_by("filepath").values("id")
    ctx.selected = []
    ctx.event(p, "on_change_review_source", value="selected")
    ctx.event(p, "start_review")
    assert ctx.ops.last("notify")[1][0] == "Select samples in the grid first"


def test_audit_session_estimate(scored):
    from methods.audit import wilson_interval

    ds = scored
    p = _panel()
    ctx = Ctx(ds, state={"audit_size": 20, "audit_seed": 5})
    p.on_load(ctx)
    ctx.event(p, "on_change_audit_size", value=20)
    out = _props(ctx.event(p, "start_audit"))
    assert ctx.panel.state.mode == "audit"
    ids = list(ds.load_run_results("label_audit", cache=False).sample_ids)
    assert len(ids) == 20 and ctx.view.values("id") == ids
    truth = dict(zip(ds.values("id"), ds.values("is_noisy")))
    clean = dict(zip(ds.values("id"), ds.values("clean_label.label")))
    classes = ["cat", "dog", "frog", "ship"]
    for sid in ids:
        key = str(classes.index(clean[sid]) + 1) if truth[sid] else "y"
        out = _props(ctx.event(p, "on_review_key", key=key, item_id=sid))
    k = sum(bool(truth[i]) for i in ids)
    est = ds.load_run_results("label_audit", cache=False).estimate
    assert est["n"] == 20 and est["wrong"] == k
    assert (est["low"], est["high"]) == pytest.approx(wilson_interval(k, 20))
    text = out["audit_estimate"]["default"]
    assert "%.1f%%" % (100 * k / 20) in text and "95% interval" in text
    assert "review_done" in out
    # the consensus reads the audit as its unbiased verified set
    ctx.event(p, "rescore")
    info = ds.get_run_info("consensus").config
    assert info.num_verified["mislabeled"] + info.num_verified["correct"] == 20
    assert ctx.panel.state.last_rescore["run_key"] == "consensus"


def test_review_on_patches(new_dataset, tmp_path):
    """Objects: the same panel on a patches view writes on each object."""
    import fiftyone as fo
    from PIL import Image

    from conftest import blobs

    x, y, noisy = blobs(num_classes=3, per_class=40, dim=8, noise_rate=0.2, seed=1)
    names = ["car", "person", "tree"]
    ds = new_dataset()
    samples = []
    for i in range(0, len(y), 2):
        path = str(tmp_path / ("img_%03d.png" % i))
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
        dets = [fo.Detection(label=names[noisy[j]], bounding_box=[0.1 + 0.4 * (j - i), 0.1, 0.3, 0.3],
                             embeddings=x[j], clean_label=names[y[j]]) for j in (i, i + 1)]
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Detections(detections=dets)))
    ds.add_samples(samples, dynamic=True)
    patches = ds.to_patches("ground_truth")
    operator("find_label_issues")(patches, label_field="ground_truth", preset="custom",
                                  detectors="knn_disagreement,label_quality")
    p = _panel()
    ctx = Ctx(ds, view=patches)
    p.on_load(ctx)
    assert ctx.panel.state.score_field == "noise_score"
    assert sum(ctx.panel.data["histogram"][0]["y"]) == len(patches)
    out = _props(ctx.event(p, "start_review"))
    first = out["review_keys"]["view"]["item_id"]
    assert out["review_image"]["view"]["box"] is not None
    ctx.event(p, "on_review_key", key="s", item_id=first)
    obj = ds.to_patches("ground_truth").select([first]).first().ground_truth
    assert obj.label_verified is False and obj.label_original is not None
    assert obj.label != obj.label_original and obj.review_verdict == "suggestion"
    ctx.event(p, "on_review_key", key="u")
    obj = ds.to_patches("ground_truth").select([first]).first().ground_truth
    # undo removes what the verdict added (each object as stored before)
    for name in ("label_original", "review_verdict", "label_verified"):
        assert getattr(obj, name, None) is None, name


def test_direction_comes_from_the_run_record_not_the_field_name(blob_dataset):
    """A Training-ValueNet run written under a custom output field is higher
    = cleaner in the panel (threshold side, flagged view, review order), as
    in the consensus: the direction comes from the run record through the
    detector registry. The old panel read it from the field's name and
    flagged the *highest* training values."""
    ds = blob_dataset(noise_rate=0.2, per_class=60)
    ids, labels, noisy = ds.values(["id", "ground_truth.label", "is_noisy"])
    picked = []
    for c in sorted(set(labels)):  # 15 correctly labeled per class: the validation set
        picked += [i for i, l, n in zip(ids, labels, noisy) if l == c and not n][:15]
    ds.select(picked).tag_samples("validated")
    operator("compute_training_value")(
        ds, output_field="tv_custom", run_key="tv_custom", episodes=4, train_per_class=40,
        val_per_class=15, min_val_per_class=10, hidden_units=16, regressor_hidden=32,
        regressor_epochs=60, regressor_patience=10, num_threads=1,
    )
    charts = plugin_module("operators.panel.charts")
    assert charts.higher_is_noisier(ds, None, "tv_custom") is False
    assert charts.higher_is_noisier(ds, None, "knn_nothing") is True  # no such run: noisier

    p = _panel()
    ctx = Ctx(ds)
    p.on_load(ctx)
    ctx.event(p, "on_change_score_field", value="tv_custom")
    state = ctx.panel.state
    lo, hi = state.bounds
    values = np.array(ds.values("tv_custom"), dtype=float)
    # the default cut sits in the low tenth of the range (cleaner-if-higher)
    assert state.threshold <= lo + 0.1 * (hi - lo) + 1e-4
    flagged = p._flagged(ctx).values("tv_custom")
    assert flagged and max(flagged) <= state.threshold
    assert flagged == sorted(flagged)  # most suspicious (lowest value) first
    assert len(flagged) == int((values <= state.threshold).sum())
    import json

    shown = json.dumps(p.render(ctx).to_json(), ensure_ascii=False)
    assert "flagged (tv_custom ≤ %.4f)" % state.threshold in shown  # the counts line
    # the review queue of the flagged items starts with the lowest value
    ctx.event(p, "start_review")
    assert ctx.view.values("tv_custom") == sorted(flagged)


def test_run_records_of_older_method_names_still_load(blob_dataset):
    """Run records keep working across versions: a method name the registry
    lists as an alias (or contains as a fragment) is the same detector, with
    its direction, through the consensus' discovery and the panel."""
    ds = blob_dataset(num_classes=3, per_class=20)
    lnr = plugin_module("store.runs")
    inputs = plugin_module("store.inputs")
    registry = plugin_module("store.registry")
    values = np.linspace(-1, 1, len(ds))
    ds.set_values("tv_old", values.tolist())
    ds.set_values("knn_old", (values + 1) / 2)
    lnr.record_run(ds, "tv_old", "valuenet", {"output_field": "tv_old"}, ["tv_old"])
    lnr.record_run(ds, "knn_old", "knn_v1", {"output_field": "knn_old", "suggestion_field": ""}, ["knn_old"])
    assert registry.by_method("valuenet").key == "training_value"
    assert registry.by_method("knn_v1").key == "knn_disagreement"
    assert registry.by_method("consensus") is None
    found = inputs.discover_inputs(ds)
    assert found["tv_old"].higher_is_noisier is False and found["tv_old"].kind == "score"
    assert found["knn_old"].higher_is_noisier is True and found["knn_old"].disagreement_share
    assert plugin_module("operators.panel.charts").higher_is_noisier(ds, None, "tv_old") is False
