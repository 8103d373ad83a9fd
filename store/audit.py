"""Audits: how many wrong labels are left?

An audit (:func:`start_audit`) draws a uniform random sample of a view
(samples, or objects of a patches view), seeded, and records it as a run
with ``method="label_audit"`` whose results hold ``sample_ids`` (item ids
in review order) and, after each audit verdict, the estimated share of wrong
labels with its 95% Wilson interval, overall and per class
(:func:`update_audit`). The consensus reads the newest such run as its
unbiased verified set (:func:`store.probabilities.audited_mask`): the items
are reviewed with the same verdicts as a review (:mod:`store.review`).
"""

import numpy as np

from . import runs as lnr
from .clock import utc_now_iso
from .data import InputError, check_label_field
from .objects import is_patches
from .review import NEITHER, Items

AUDIT_METHOD = "label_audit"


def start_audit(view, label_field="ground_truth", size=100, seed=51, run_key="label_audit"):
    """Draws a uniform random sample of ``view`` and records it as a run.

    The population is the items of ``view`` with a label (samples, or the
    objects of a patches view); ids are sorted before drawing, so the same
    view and seed give the same sample whatever the view's order. Returns
    the run's results (see :func:`update_audit`).
    """
    from ..methods.audit import draw_audit_sample

    check_label_field(view, label_field)
    if int(size) < 1:
        raise InputError("The audit size must be at least 1, got %r" % size)
    items = Items(view, label_field)
    dataset = view._root_dataset
    population = sorted(view.exists(label_field + ".label").values("id"))
    if not population:
        raise InputError("No item of the view has a label in '%s'" % label_field)
    picked = [population[i] for i in draw_audit_sample(len(population), size, seed)]
    params = dict(label_field=label_field, size=int(size), seed=int(seed), run_key=run_key)
    with lnr.dataset_write_lock(dataset):
        lnr.record_run(
            dataset, run_key, AUDIT_METHOD, params, [],
            results=dict(
                sample_ids=picked, population=len(population), label_field=label_field,
                objects=items.objects, seed=int(seed), created=utc_now_iso(),
            ),
            num_samples=len(picked),
        )
    return update_audit(view, run_key)


def audit_runs(dataset):
    """Keys of the audit runs, most recent first."""
    dataset = dataset._root_dataset
    keys = lnr.plugin_runs(dataset, method=AUDIT_METHOD)
    return sorted(keys, key=lambda k: dataset.get_run_info(k).timestamp, reverse=True)


def update_audits(collection):
    """:func:`update_audit` of every audit run, most recent first."""
    return [update_audit(collection, key) for key in audit_runs(collection)]


def update_audit(collection, run_key=None):
    """Recomputes an audit's estimate from the verdicts so far and saves it.

    Wrong = ``label_verified`` False; right = True; unreviewed or skipped
    items are left out. The class of an item is its *given* label (the
    original, if a correction was applied since). Results keep
    ``sample_ids``, ``population``, ``reviewed``, ``skipped`` and
    ``estimate`` (see :func:`methods.audit.audit_estimate`).

    ``collection``: the dataset, or (object audits) the patches view the
    audit was drawn from (else a patches view of the dataset is built).
    """
    from ..methods.audit import audit_estimate, type_shares

    dataset = collection._root_dataset
    run_key = run_key or (audit_runs(dataset) or [None])[0]
    if run_key is None:
        raise InputError("This dataset has no audit yet: start one (start_label_audit)")
    results = lnr.load_results(dataset, run_key)
    ids = list(results["sample_ids"])
    objects = bool(results.get("objects"))
    base = collection if objects == is_patches(collection) else dataset
    items = Items(base, results["label_field"], objects=objects)
    got = items.read(ids, ["given", "original", "verified", "verdict"])
    found = items.found(ids)
    wrong, labels, skipped, outcomes = [], [], 0, []
    for k, sid in enumerate(ids):
        if sid not in found:
            continue
        if got["verdict"][k] == "skip":
            skipped += 1
            continue
        if got["verdict"][k] in NEITHER:  # no right/wrong: counted by type only
            outcomes.append(got["verdict"][k])
            continue
        v = got["verified"][k]
        if v is None:
            continue
        wrong.append(v is False)
        outcomes.append("wrong" if v is False else "right")
        labels.append(got["original"][k] or got["given"][k])
    est = audit_estimate(np.array(wrong, bool), labels, population=results["population"])
    est["types"] = type_shares(outcomes)
    results.update(reviewed=len(wrong), skipped=skipped, estimate=est, updated=utc_now_iso())
    run_results = dataset.init_run_results(run_key, **lnr.jsonable(results))
    dataset.save_run_results(run_key, run_results, overwrite=True)
    return dict(results, run_key=run_key)
