"""Operator ``compute_label_issue_types``: what kind of problem each sample has.

Runs at the end of ``find_label_issues`` (after the consensus), or on its
own afterwards. From the embeddings, the newest out-of-sample probabilities
of the same level (a ``compute_label_quality`` run) and the consensus'
flags it writes, per sample (or per object on a patches view):

- ``label_ambiguity``: probability that two annotators would label the
  item differently (:mod:`methods.label_ambiguity`);
- ``outlier_score``: how much farther the item is from its nearest class
  than its place in the whole data explains, in robust standard deviations
  of that class, asked of the embeddings' directions and of the embeddings
  as given (:mod:`methods.outlier_score`);
- ``duplicate_group`` (int, None outside groups) and ``duplicate_conflict``
  (bool): near-identical items and whether their labels differ
  (:mod:`methods.near_duplicates`: the chain's shared neighbour graph
  proposes, the images' thumbnails decide, :mod:`store.thumbnails`; or the
  embedding distance alone with ``duplicate_check="embeddings"``);
- ``label_issue``: ``wrong``, ``ambiguous``, ``outlier``,
  ``duplicate_conflict`` or ``""`` (:mod:`methods.issue_types`).

The run's results hold the overlapping class pairs
(:mod:`methods.overlapping_classes`), the counts of each type, the rules
and thresholds, and per item with an issue the evidence behind it.
"""

import numpy as np

from ...methods.outlier_score import METRICS as OUTLIER_METRICS  # numpy only: light
from ...store import registry
from ...store import runs as lnr
from ..base import Computed, DetectorOperator
from ..forms import Param
from ...store.data import InputError, load_inputs, output_schema, read_outputs
from ...store.objects import is_patches

METHOD = "issue_types"
#: items with an issue whose evidence is kept in the run results
MAX_EVIDENCE = 100_000
#: output names (prefixed like the chain's other outputs)
OUTPUTS = ("label_ambiguity", "outlier_score", "duplicate_group", "duplicate_conflict")
#: how near-duplicates are decided (:mod:`methods.near_duplicates`)
DUPLICATE_CHECKS = ("pixels", "embeddings")


class ComputeIssueTypes(DetectorOperator):
    name = "compute_label_issue_types"
    label = "Label noise: issue types (ambiguous, outlier, conflicting duplicates)"
    description = (
        "Says what kind of issue each sample has: a wrong label, an ambiguous "
        "image, an image of no class (outlier), or near-identical images with "
        "different labels; lists the overlapping class pairs"
    )
    method = METHOD
    output_field = "label_issue"
    method_params = (
        Param(
            "flag_field", "noise_flagged", "Flag field",
            "The consensus' flag (likely wrong label), from compute_noise_score",
            kind="score",
        ),
        Param(
            "probabilities_field", registry.get("label_quality").output_field,
            "Label-quality field",
            "Output field of the compute_label_quality run whose out-of-sample "
            "probabilities are used",
            kind="score",
        ),
        Param(
            "field_prefix", "", "Output prefix",
            "Prefix of label_ambiguity, outlier_score, duplicate_group, "
            "duplicate_conflict (find_label_issues passes its run prefix)",
        ),
        Param(
            "duplicate_check", "pixels", "Near-duplicate check",
            "pixels: the embeddings propose each item's closest neighbours "
            "and the images decide (thumbnails agree after the best flip and "
            "crop); embeddings: the embedding distance alone (cleanlab "
            "Datalab's rule, no image read)",
            choices=DUPLICATE_CHECKS,
        ),
        Param(
            "duplicate_threshold", 0.13, "Near-duplicate threshold",
            "Cosine distance, as a share of the median nearest-neighbour "
            "distance, below which two items are near-duplicates (cleanlab "
            "Datalab's default 0.13); with the pixel check, only for the "
            "pairs it cannot check (an image unreadable or blank, or beyond "
            "its budget of 20,000 pairs, nearest first)",
        ),
        Param(
            "duplicate_pixel_threshold", 0.95, "Pixel agreement threshold",
            "Pixel check: correlation of the two aligned thumbnails (best "
            "flip and crop) at or above which two items are copies (0.95: "
            "90% of their pixel variance shared)",
        ),
        Param(
            "outlier_z", 3.0, "Outlier threshold",
            "outlier_score (robust standard deviations beyond the nearest "
            "class's median) above which an item is an outlier",
        ),
        Param(
            "outlier_metric", "both", "Outlier geometry",
            "both: far from every class by direction (cosine) or as given "
            "(euclidean), whichever is larger, corrected for the two tests; "
            "cosine: only each embedding's direction counts; euclidean: the "
            "embeddings as given",
            choices=OUTLIER_METRICS,
        ),
    )

    def compute(self, ctx, view, params, progress):
        from ...methods.issue_types import assign_issue_types, issue_counts
        from ...methods.label_ambiguity import label_ambiguity, split_wrong_ambiguous
        from ...methods.near_duplicates import K, near_duplicate_groups
        from ...methods.neighbours import cosine_neighbours
        from ...methods.outlier_score import outlier_score
        from ...methods.overlapping_classes import describe_pair, overlapping_classes
        from ...store.probabilities import probability_evidence
        from ...store.thumbnails import thumbnail_reader

        label_field = params["label_field"]
        if params["output_field"] == label_field:
            raise InputError("output_field would overwrite the label field '%s'" % label_field)
        metric = params["outlier_metric"]
        if metric not in OUTLIER_METRICS:
            raise InputError(
                "outlier_metric must be one of %s, got %r" % (", ".join(OUTLIER_METRICS), metric))
        check = params["duplicate_check"]
        if check not in DUPLICATE_CHECKS:
            raise InputError(
                "duplicate_check must be one of %s, got %r" % (", ".join(DUPLICATE_CHECKS), check))
        pixel_threshold = float(params["duplicate_pixel_threshold"])
        if not -1.0 <= pixel_threshold <= 1.0:
            raise InputError(
                "duplicate_pixel_threshold is a correlation in [-1, 1], got %r" % pixel_threshold)
        inputs = load_inputs(view, label_field, params["embeddings_field"],
                             need_filepaths=check == "pixels")
        ids, y, classes = inputs.ids, inputs.y, inputs.classes
        patches = label_field if is_patches(view) else None
        quality = params["probabilities_field"]
        evidence, sources = probability_evidence(
            ctx.dataset, ids, y, classes, {quality: None}, {}, patches_field=patches
        )
        if quality not in evidence:
            raise InputError(
                "No compute_label_quality run wrote '%s' on this %s: run "
                "compute_label_quality (or find_label_issues) first, or name its "
                "output field in probabilities_field"
                % (quality, "patches field '%s'" % label_field if patches else "dataset")
            )
        probs = evidence[quality]
        flag = params["flag_field"]
        schema = output_schema(view, label_field)
        if not flag or flag not in schema:
            raise InputError(
                "Flag field '%s' does not exist: run compute_noise_score (or "
                "find_label_issues) first, or name the consensus' flag field" % flag
            )
        flagged = np.array(
            [bool(v) for v in read_outputs(view, label_field, [flag], ids=ids)[flag]]
        )
        progress(0.2, "ambiguity")
        ambiguity = label_ambiguity(probs, y)
        split, alternative = split_wrong_ambiguous(probs, y)
        progress(0.4, "outliers")
        out = outlier_score(inputs.embeddings, y, num_classes=len(classes), metric=metric)
        progress(0.6, "near-duplicates")
        info = {}
        # the chain's shared graph (same call as kNN disagreement: one search)
        neighbours = cosine_neighbours(inputs.embeddings, K, info=info)
        thumbnails = None
        if check == "pixels":
            thumbnails = thumbnail_reader(view, ids, inputs.filepaths,
                                          label_field=label_field if patches else None)
        groups = near_duplicate_groups(
            inputs.embeddings, y, neighbours=neighbours,
            threshold=float(params["duplicate_threshold"]),
            thumbnails=thumbnails, pixel_threshold=pixel_threshold,
        )
        types, reasons = assign_issue_types(
            flagged, split, out["score"], float(params["outlier_z"]), groups["conflict"]
        )
        pairs = overlapping_classes(probs, y, class_names=classes, top=20)
        for pair in pairs:
            pair["text"] = describe_pair(pair)
        prefix = params["field_prefix"] or ""
        group = groups["group"]
        fields = {
            prefix + "label_ambiguity": ambiguity,
            prefix + "outlier_score": out["score"],
            prefix + "duplicate_conflict": groups["conflict"],
            params["output_field"]: types,
        }
        if (group >= 0).any():  # an all-None field would not be created
            fields[prefix + "duplicate_group"] = [int(g) if g >= 0 else None for g in group]
        rows = np.flatnonzero(types != "")[:MAX_EVIDENCE]
        given = probs[rows, y[rows]]
        evidence_rows = [
            dict(
                id=str(ids[r]), type=types[r], reason=reasons[r],
                p_given=round(float(p), 4),
                alternative=classes[alternative[r]],
                p_alternative=round(float(probs[r, alternative[r]]), 4),
                label_ambiguity=round(float(ambiguity[r]), 4),
                outlier_score=round(float(out["score"][r]), 3),
                outlier_geometry=str(out["geometry"][r]),
                nearest_class=classes[out["nearest_class"][r]],
                duplicate_group=int(group[r]) if group[r] >= 0 else None,
            )
            for r, p in zip(rows, given)
        ]
        counts = issue_counts(types)
        summary = dict(
            issue_types=counts,
            overlapping_classes=[p["text"] for p in pairs[:10]],
            num_duplicate_groups=groups["num_groups"],
            num_conflicting_groups=groups["num_conflicting_groups"],
            skipped=inputs.skipped,
        )
        rules = dict(
            ambiguous="flagged and p[given] >= 0.5 * p[best other class], or no class above 0.5",
            wrong="flagged, another class clearly favoured",
            outlier="outlier_score > %g (%s)" % (
                float(params["outlier_z"]),
                "cosine and euclidean geometries, Sidak-combined" if metric == "both"
                else "%s geometry" % metric),
            duplicate_conflict=_duplicate_rule(groups, pixel_threshold),
            precedence="duplicate_conflict > outlier > wrong/ambiguous",
        )
        results = dict(
            counts=counts,
            overlapping_classes=pairs,
            rules=rules,
            probabilities=sources.get(quality),
            duplicate_radius=groups["radius"],
            duplicate_check={k: v for k, v in groups.items() if k not in ("group", "conflict")},
            evidence=evidence_rows,
            evidence_truncated=bool(len(rows) < int((types != "").sum())),
        )
        return Computed(
            ids=ids, fields=fields, flagged=types != "", summary=summary, results=results,
            info=dict(classes=classes, counts=counts, search=info, rules=rules, skipped=inputs.skipped),
        )


def latest_issue_run(dataset, patches_field=None):
    """Key of the newest ``compute_label_issue_types`` run of this level, or None."""
    best, stamp = None, None
    for key in lnr.plugin_runs(dataset, method=METHOD):
        info = dataset.get_run_info(key)
        if (getattr(info.config, "patches_field", None) or None) != (patches_field or None):
            continue
        if stamp is None or info.timestamp > stamp:
            best, stamp = key, info.timestamp
    return best


def _duplicate_rule(groups, pixel_threshold):
    """The near-duplicate rule of a run, in words."""
    if groups["check"] != "pixels":
        return ("near-duplicate group (cosine distance <= %.4g) with 2+ labels"
                % groups["radius"])
    text = (
        "near-duplicate group with 2+ labels; pairs: among each item's 3 nearest "
        "neighbours (checked up to cosine distance %.4g, nearest first), thumbnails "
        "correlate >= %g after the best flip and crop and distinctly better than "
        "with an ordinary neighbour (%d of %d pairs checked matched)"
        % (groups["candidate_reach"], pixel_threshold, groups["pixel_pairs_matched"],
           groups["pixel_pairs_checked"])
    )
    if groups["candidates_truncated"]:
        text += "; the candidate list was cut at the budget (nearest pairs first)"
    if groups["pixel_pairs_unverifiable"]:
        text += ("; %d pairs without readable images: cosine distance <= %.4g"
                 % (groups["pixel_pairs_unverifiable"], groups["radius"]))
    return text


def overlapping_pairs(dataset, patches_field=None, top=5):
    """The newest run's overlapping class pairs (dicts with ``text``)."""
    key = latest_issue_run(dataset, patches_field)
    if key is None:
        return []
    return list(lnr.load_results(dataset, key).get("overlapping_classes") or [])[:top]


def chain_step(view, steps, common, prefix, get_operator, step_params):
    """The issue-types step ``find_label_issues`` appends after the consensus:
    ``((name, operator, params) or None, note or None)``. Skipped (with a
    note) when the operator is missing, the consensus writes no flag, or
    no label-quality probabilities of this level (images or objects) will
    exist."""
    op = get_operator(ComputeIssueTypes.name)
    if op is None:
        return None, "Issue types skipped: operator %s is not available" % ComputeIssueTypes.name
    dataset = view._root_dataset
    patches = common.get("label_field") if is_patches(view) else None
    consensus = steps[-1][2]
    flag = consensus.get("flag_field", "noise_flagged")
    label_quality = registry.get("label_quality")
    quality = prefix + label_quality.output_field

    def same_level_quality(key):
        config = dataset.get_run_info(key).config
        return (getattr(config, "method", None) == label_quality.method
                and (getattr(config, "patches_field", None) or None) == patches
                and (getattr(config, "params", None) or {}).get("output_field") == quality)

    has_quality = any(name == label_quality.operator for name, _, _ in steps) or any(
        same_level_quality(k) for k in lnr.plugin_runs(dataset)
    )
    if not flag or not has_quality:
        return None, (
            "Issue types skipped: needs the consensus' flag field and a "
            "compute_label_quality run (label quality is in the fast preset)"
        )
    extra = dict(flag_field=flag, probabilities_field=quality, field_prefix=prefix)
    return (ComputeIssueTypes.name, op, step_params(op, common, extra, prefix)), None


def chain_summary(done):
    """What ``find_label_issues`` adds to its result from the issue-types step."""
    found = dict(done).get(ComputeIssueTypes.name)
    if not found:
        return {}
    return dict(
        issue_types=found.get("issue_types"),
        overlapping_classes=found.get("overlapping_classes"),
        num_duplicate_groups=found.get("num_duplicate_groups"),
    )
