"""The pictures of the "Label noise" panel, each from database aggregations.

- :func:`score_histogram`: the histogram of a score (the calibrated
  ``noise_score`` is a probability: bins over [0, 1]) with the threshold;
  one ``histogram_values`` aggregation.
- :func:`pair_heatmap`: given label x suggested label over the flagged items
  (one ``count_values`` of a computed pair key); when the consensus run
  estimated class-pair noise (``noise_estimate["pairs"]``) the cells can show
  that estimate instead, the flagged counts staying in the hover text.
- :func:`class_rates`: the estimated share of wrong labels per class (the
  consensus run's ``noise_estimate["per_class"]``), else the share of flagged
  items per class (two ``count_values``).

No Python loop over samples: the loops here run over bins and classes.
Paths are resolved for samples or for the objects of a patches view
(:func:`store.data.output_path`).
"""

from fiftyone import ViewField as F

from ...store import inputs, registry
from ...store import runs as lnr
from ...store.data import output_path, output_schema
from ...store.objects import is_patches

BINS = 40
#: a separator no class name is expected to contain
SEP = "\u241f"
CONSENSUS_METHOD = registry.CONSENSUS_METHOD
HEATMAP_CELLS = ("flagged", "estimated")


def panel_base(ctx):
    """``(collection, label field)`` the panel works on: the dataset, or the
    whole patches view (without the panel's own filters) on a patches view."""
    view = getattr(ctx, "view", None)
    if view is not None and is_patches(view):
        return view._base_view, view._label_fields[0]
    return ctx.dataset, None


def higher_is_noisier(collection, label_field, score_field):
    """Whether a higher ``score_field`` means noisier (flag at or above the
    threshold) or cleaner (at or below): from the run record that wrote it,
    through the detector registry (:func:`store.inputs.higher_is_noisier`),
    so a detector's output reads the same way under any field name."""
    return inputs.higher_is_noisier(collection, label_field, score_field)


def beyond(collection, label_field, score_field, threshold, higher=True):
    """Items beyond ``threshold`` (``>=``, or ``<=`` for a cleaner-if-higher
    score), most suspicious first (a view)."""
    path = output_path(collection, label_field, score_field)
    expr = F(path) >= threshold if higher else F(path) <= threshold
    return collection.match(expr).sort_by(path, reverse=higher)


def suggestion_path(collection, label_field, field):
    """The class path of a suggestion output (``.label`` of a Classification)."""
    if not field:
        return None
    f = output_schema(collection, label_field).get(field)
    if f is None:
        return None
    path = output_path(collection, label_field, field)
    return path + ".label" if getattr(f, "document_type", None) is not None else path


def consensus_run(collection, score_field):
    """``(run key, run config)`` of the newest consensus run that wrote
    ``score_field`` on these items (samples, or this patches field), or
    ``(None, None)``."""
    dataset = collection._root_dataset
    patches_field = collection._label_fields[0] if is_patches(collection) else None
    best = (None, None, None)
    for key in lnr.plugin_runs(dataset, method=CONSENSUS_METHOD):
        info = dataset.get_run_info(key)
        config = info.config
        params = getattr(config, "params", None) or {}
        if (params.get("output_field") or registry.CONSENSUS_FIELD) != score_field:
            continue
        if getattr(config, "patches_field", None) != patches_field:
            continue
        if best[2] is None or info.timestamp > best[2]:
            best = (key, config, info.timestamp)
    return best[0], best[1]


def noise_estimate(collection, score_field):
    """The consensus run's ``noise_estimate`` dict, or None."""
    key, _ = consensus_run(collection, score_field)
    if key is None:
        return None
    return lnr.load_results(collection._root_dataset, key).get("noise_estimate") or None


def default_threshold(collection, label_field, score_field, flag_field, bounds, higher=None):
    """The consensus' own cut when its flag field exists (the lowest score it
    flagged), else 0.5 for a probability, else the top tenth of the range
    (``higher``: the score's direction, read from its run record if None)."""
    lo, hi = bounds
    if higher is None:
        higher = higher_is_noisier(collection, label_field, score_field)
    if flag_field and flag_field in output_schema(collection, label_field):
        flagged = collection.match(F(output_path(collection, label_field, flag_field)) == True)  # noqa: E712
        cut = flagged.bounds(output_path(collection, label_field, score_field))
        if cut[0] is not None:
            return float(cut[0] if higher else cut[1])
    if 0.0 <= lo and hi <= 1.0:
        return 0.5
    return lo + 0.9 * (hi - lo) if higher else lo + 0.1 * (hi - lo)


def score_histogram(collection, label_field, score_field, bins=BINS):
    """``(bar trace, (lo, hi))``: one ``histogram_values`` aggregation; a
    score inside [0, 1] (a probability) is binned over [0, 1]."""
    path = output_path(collection, label_field, score_field)
    lo, hi = collection.bounds(path)
    if lo is None:
        return None, (0.0, 1.0)
    lo, hi = float(lo), float(hi)
    if 0.0 <= lo and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif hi <= lo:
        hi = lo + 1.0
    # FiftyOne's bins are right-open: widen the last one a hair so the
    # maximum (e.g. a score of exactly 1.0) is counted
    counts, edges, _ = collection.histogram_values(path, bins=bins, range=[lo, hi + 1e-9 * (hi - lo)])
    centers = [(a + b) / 2.0 for a, b in zip(edges[:-1], edges[1:])]
    trace = {
        "type": "bar", "x": centers, "y": list(counts), "name": score_field,
        "marker": {"color": "#FF6D04"},
        "hovertemplate": "%{y} items with " + score_field + " ≈ %{x:.3f}<extra></extra>",
    }
    return trace, (lo, hi)


def pair_counts(flagged, given_path, suggested_path):
    """``{(given, suggested): count}`` over ``flagged`` (one aggregation)."""
    key = F(given_path).concat(SEP, F(suggested_path))
    found = flagged.match(F(given_path).exists() & F(suggested_path).exists()).count_values(key)
    out = {}
    for k, n in found.items():
        if k is None:
            continue
        g, _, s = k.partition(SEP)
        out[(g, s)] = n
    return out


def pair_heatmap(flagged_counts, estimate=None, cells="estimated"):
    """A plotly heatmap trace of given (rows) x suggested (columns).

    ``cells="estimated"`` with ``estimate["pairs"]`` ([given, true, count])
    shows the consensus' estimated number of wrong labels per pair (whole
    target); otherwise the number of flagged items per pair. The hover text
    always gives both. Returns ``(trace, what the cells show)`` or
    ``(None, None)`` when there is nothing to show.
    """
    pairs = {}
    if estimate and estimate.get("pairs"):
        pairs = {(str(g), str(t)): int(c) for g, t, c in estimate["pairs"]}
    show_estimate = cells == "estimated" and bool(pairs)
    classes = sorted({c for pair in list(flagged_counts) + list(pairs) for c in pair})
    if not classes:
        return None, None
    z, text = [], []
    for g in classes:
        row, hover = [], []
        for s in classes:
            n_flagged = flagged_counts.get((g, s), 0)
            n_est = pairs.get((g, s))
            value = (n_est or 0) if show_estimate else n_flagged
            row.append(value if (value or g != s) else None)
            hover.append(
                "given %s → suggested %s<br>flagged: %d%s<br>click: show them"
                % (g, s, n_flagged,
                   "<br>estimated wrong labels (whole target): %d" % n_est if n_est is not None else "")
            )
        z.append(row)
        text.append(hover)
    trace = {
        "type": "heatmap", "x": classes, "y": classes, "z": z, "text": text,
        "hovertemplate": "%{text}<extra></extra>", "colorscale": "Oranges",
        "texttemplate": "%{z}", "showscale": False, "xgap": 1, "ygap": 1,
    }
    return trace, ("estimated wrong labels" if show_estimate else "flagged items")


def class_rates(collection, given_path, flagged, estimate=None):
    """``(bar trace, what it shows)``: per-class estimated noise rate from
    the consensus estimate, else the share of each class that is flagged."""
    if estimate and estimate.get("per_class"):
        rates = {str(c): float(r) for c, r in estimate["per_class"].items()}
        what = "estimated share of wrong labels per class (consensus, %s)" % (
            estimate.get("source") or "model")
    else:
        totals = collection.count_values(given_path)
        hits = flagged.count_values(given_path)
        rates = {str(c): hits.get(c, 0) / n for c, n in totals.items() if c is not None and n}
        what = "share of each class flagged"
    if not rates:
        return None, None
    classes = sorted(rates)
    trace = {
        "type": "bar", "x": classes, "y": [100.0 * rates[c] for c in classes],
        "marker": {"color": "#FF6D04"},
        "hovertemplate": "%{x}: %{y:.1f}%<extra></extra>",
    }
    return trace, what


def flagged_pair_view(flagged, given_path, suggested_path, given, suggested):
    """The flagged items with this given and suggested class (keeps order)."""
    return flagged.match((F(given_path) == given) & (F(suggested_path) == suggested))


def threshold_shape(threshold):
    if threshold is None:
        return []
    return [{
        "type": "line", "x0": threshold, "x1": threshold, "yref": "paper", "y0": 0, "y1": 1,
        "line": {"color": "#d62728", "width": 2, "dash": "dash"},
    }]


def issue_overview(dataset, patches_field=None, top=5):
    """Markdown beside the heatmap: the newest issue-types run's counts
    (``label_issue``) and its overlapping class pairs ("cat <-> dog: 3.1%
    of their samples could be either"); "" before any such run."""
    from ..detectors.issue_types import latest_issue_run, overlapping_pairs

    key = latest_issue_run(dataset, patches_field)
    if key is None:
        return ""
    counts = dict(getattr(dataset.get_run_info(key).config, "counts", None) or {})
    lines = []
    if counts:
        lines.append("**Issue types** (`label_issue`): " + " · ".join(
            "%d %s" % (n, name.replace("_", " ")) for name, n in counts.items()))
    pairs = overlapping_pairs(dataset, patches_field, top=top)
    if pairs:
        lines.append("**Overlapping classes** (from the estimated joint of given and true labels):")
        lines += ["- " + p["text"] for p in pairs]
    return "\n\n".join(lines[:1]) + ("\n\n" + "\n".join(lines[1:]) if len(lines) > 1 else "")
