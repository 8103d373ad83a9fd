"""Operators of the Dupes review loop (the detector is
:mod:`operators.detectors.dupes`).

- Directory review: ``export_dupes`` copies the dupes to
  ``<dir>/<label>/<dupe_label>_<dupe_count>_<file name>`` and writes the
  ``before.txt`` listing plus ``dupes_manifest.json`` (the only source used to
  map files back to samples); the technician deletes the files whose label is
  right; ``import_dupes_review`` rescans into ``after.txt``: still present ⇒
  relabeled to ``dupe_label``; moved into another class folder ⇒ relabeled
  to that class; deleted ⇒ confirmed correct ⇒ ignore list.
- In-App review: tag samples ``dupes:relabel`` / ``dupes:keep`` and run
  ``apply_dupes_review`` (same bookkeeping).
- ``revert_dupes_review`` restores original labels; ``export_dupes_corrected``
  writes the corrected dataset as a class-folder tree.

The ignore list is the boolean sample field ``dupes_ignore`` (name set by the
``ignore_field`` parameter): True = confirmed correct, never flagged again.
Relabeling goes through :mod:`store.corrections` (original label kept in
``<label_field>_original``, record in ``<label_field>_correction``). The
folders are checked and confined by :mod:`store.safe_paths`.
"""

import json
import os
import shutil

from ...store import corrections as lnc
from ...store import registry
from ...store import safe_paths as sp
from ..base import ActionOperator
from ..forms import Param
from ...store.data import InputError, check_label_field, write_sample_fields

#: the Dupes detector (its run's method, key and fields)
DUPES = registry.get("dupes")
SOURCE = "dupes"
MANIFEST = "dupes_manifest.json"
BEFORE = "before.txt"
AFTER = "after.txt"
LISTINGS = (MANIFEST, BEFORE, AFTER)


def dupes_run_params(dataset, run_key):
    """The parameters of Dupes run ``run_key`` (fields it wrote, label field)."""
    if run_key not in dataset.list_runs():
        raise InputError(
            "No Dupes run '%s' on dataset '%s': run compute_dupes first (or "
            "pass run_key=<the key you used>)" % (run_key, dataset.name)
        )
    config = dataset.get_run_info(run_key).config
    if registry.by_method(getattr(config, "method", None)) is not DUPES:
        raise InputError(
            "Run '%s' is a '%s' run, not a Dupes run" % (run_key, config.method)
        )
    params = dict(config.params)
    for key, default in (
        ("output_field", DUPES.output_field),
        ("suggestion_field", DUPES.suggestion_field),
        ("flag_field", "is_dupe"),
        ("ignore_field", "dupes_ignore"),
        ("label_field", "ground_truth"),
    ):
        params.setdefault(key, default)
    return params


def record_review(dataset, run, relabel_ids, relabel_labels, keep_ids, label_field=None):
    """The shared bookkeeping of both review paths.

    Relabels ``relabel_ids`` (original kept, see :mod:`store.corrections`),
    puts ``keep_ids`` on the ignore list, and clears the dupe flag of all
    reviewed samples. Validation happens before anything is written.
    """
    label_field = label_field or run["label_field"]
    check_label_field(dataset, label_field)
    both = set(map(str, relabel_ids)) & set(map(str, keep_ids))
    if both:
        raise InputError(
            "%d sample(s) are marked both to relabel and to keep (e.g. %s); "
            "choose one" % (len(both), sorted(both)[0])
        )
    changed = lnc.apply_corrections(
        dataset, relabel_ids, relabel_labels, label_field, source=SOURCE
    )
    if keep_ids:
        write_sample_fields(
            dataset, keep_ids, {run["ignore_field"]: [True] * len(keep_ids)}
        )
    reviewed = [str(i) for i in list(relabel_ids) + list(keep_ids)]
    if reviewed and run["flag_field"] in dataset.get_field_schema():
        write_sample_fields(
            dataset, reviewed, {run["flag_field"]: [False] * len(reviewed)}
        )
    return {
        "num_relabeled": changed["num_corrected"],
        "num_already_relabeled": changed["num_unchanged"],
        "num_confirmed": len(keep_ids),
    }


RUN_KEY_PARAM = Param("run_key", DUPES.key, "Dupes run", "Run key of the compute_dupes run")


class ExportDupes(ActionOperator):
    name = "export_dupes"
    label = "Label noise: export dupes for review"
    description = (
        "Copies the dupes to <dir>/<label>/<dupe_label>_<count>_<file> and "
        "writes a 'before' listing"
    )
    params = (
        Param("dir", "", "Review directory", "Folder to create (must be empty "
              "or a previous dupes export)"),
        RUN_KEY_PARAM,
        Param("overwrite", False, "Replace previous export",
              "Delete the files of a previous dupes export in this folder first"),
    )

    def run(self, ctx, params, progress):
        from fiftyone import ViewField as F

        root = _review_dir(params["dir"])
        run = dupes_run_params(ctx.dataset, params["run_key"])
        view = ctx.target_view()
        flag = run["flag_field"]
        if flag not in view.get_field_schema():
            raise InputError("Field '%s' is missing: run compute_dupes first" % flag)
        label_field = run["label_field"]
        check_label_field(view, label_field)
        classes = sorted(
            c for c in view.distinct(label_field + ".label") if isinstance(c, str) and c
        )
        dupes_view = view.match(F(flag) == True)  # noqa: E712
        ids, paths, labels, others, counts = dupes_view.values(
            ["id", "filepath", label_field + ".label", run["suggestion_field"],
             run["output_field"]]
        )
        prepare_review_dir(root, params["overwrite"])
        folders = sp.class_folders(classes + [x for x in labels if x])
        for folder in folders:
            os.makedirs(sp.join_inside(root, folder), exist_ok=True)
        folder_of = {c: f for f, c in folders.items()}
        used, files, missing = {}, {}, []
        for k, (sid, path, label, other, count) in enumerate(
            zip(ids, paths, labels, others, counts)
        ):
            if not label or not other:
                continue
            folder = folder_of[label]
            name = "%s_%d_%s" % (
                sp.safe_name(other), int(count), sp.safe_file_name(os.path.basename(path))
            )
            name = sp.unique_name(name, used.setdefault(folder, set()))
            target = sp.join_inside(root, folder, name)
            try:
                shutil.copy2(path, target)
            except OSError as e:
                missing.append("%s (%s)" % (path, type(e).__name__))
                continue
            files[folder + "/" + name] = {
                "id": sid, "label": label, "dupe_label": other,
                "dupe_count": int(count), "source": path,
            }
            if k % 100 == 0:
                progress(k / max(len(ids), 1), "copied %d/%d" % (k, len(ids)))
        manifest = {
            "format": 1,
            "plugin": "@label-noise/curation",
            "dataset": ctx.dataset.name,
            "run_key": params["run_key"],
            "label_field": label_field,
            "classes": folders,
            "files": files,
        }
        with open(sp.join_inside(root, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
        sp.write_lines(sp.join_inside(root, BEFORE), sorted(files))
        return {
            "dir": root,
            "num_exported": len(files),
            "num_missing_files": len(missing),
            "missing": missing[:20],
        }


class ImportDupesReview(ActionOperator):
    name = "import_dupes_review"
    label = "Label noise: import the dupes directory review"
    description = (
        "Rescans a reviewed export_dupes folder: files still there are "
        "relabeled to their dupe label, deleted files go on the ignore list"
    )
    destructive = True
    params = (
        Param("dir", "", "Review directory", "The folder written by export_dupes"),
    )

    def warning(self, ctx):
        return "files still in the folder are relabeled to their dupe label"

    def run(self, ctx, params, progress):
        root = _review_dir(params["dir"], must_exist=True)
        manifest = read_manifest(root)
        run = dupes_run_params(ctx.dataset, manifest["run_key"])
        after = sp.list_files(root, exclude=LISTINGS)
        sp.write_lines(sp.join_inside(root, AFTER), after)
        decision = compare_listings(manifest, after)
        ids = [manifest["files"][rel]["id"] for rel in decision["relabel"]]
        new_labels = list(decision["relabel"].values())
        keep = [manifest["files"][rel]["id"] for rel in decision["keep"]]
        sp.check_ids(ctx.dataset, ids + keep)
        summary = record_review(
            ctx.dataset, run, ids, new_labels, keep, manifest["label_field"]
        )
        summary.update(
            num_unknown_files=len(decision["unknown"]),
            unknown_files=decision["unknown"][:20],
            num_moved=decision["num_moved"],
        )
        return summary


def read_manifest(root):
    path = sp.join_inside(root, MANIFEST)
    if not os.path.isfile(path):
        raise InputError(
            "'%s' has no %s: it is not a folder written by export_dupes" % (root, MANIFEST)
        )
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format") != 1 or not isinstance(manifest.get("files"), dict):
        raise InputError("%s in '%s' is not a dupes manifest" % (MANIFEST, root))
    return manifest


def compare_listings(manifest, after):
    """Decides each exported file from the files present after review.

    Only names the manifest knows are trusted: a known file still in place
    ⇒ relabel to its dupe label; gone from its place but present (same file
    name) in exactly one other folder that the manifest maps to a class ⇒
    relabel to that class (its own class ⇒ keep); gone ⇒ keep (confirmed).

    Returns a dict: ``relabel`` {relpath: new label}, ``keep`` [relpath],
    ``unknown`` [files present that map to nothing], ``num_moved``.
    """
    present = set(after)
    by_name = {}
    for rel in after:
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    classes = manifest.get("classes", {})
    relabel, keep, matched, moved = {}, [], set(), 0
    for rel, entry in manifest["files"].items():
        if rel in present:
            relabel[rel] = entry["dupe_label"]
            matched.add(rel)
            continue
        name = rel.rsplit("/", 1)[-1]
        elsewhere = [
            r for r in by_name.get(name, ())
            if r not in manifest["files"] and r.count("/") == 1
            and r.split("/", 1)[0] in classes
        ]
        if len(elsewhere) == 1:
            target = classes[elsewhere[0].split("/", 1)[0]]
            matched.add(elsewhere[0])
            moved += 1
            if target == entry["label"]:
                keep.append(rel)
            else:
                relabel[rel] = target
        else:
            keep.append(rel)
    unknown = sorted(r for r in present if r not in matched)
    return {"relabel": relabel, "keep": keep, "unknown": unknown, "num_moved": moved}


class ApplyDupesReview(ActionOperator):
    name = "apply_dupes_review"
    label = "Label noise: apply the in-App dupes review"
    description = (
        "Samples tagged dupes:relabel get their dupe label; samples tagged "
        "dupes:keep go on the ignore list"
    )
    destructive = True
    params = (
        RUN_KEY_PARAM,
        Param("relabel_tag", "dupes:relabel", "Relabel tag",
              "Samples with this tag are relabeled to their dupe label"),
        Param("keep_tag", "dupes:keep", "Keep tag",
              "Samples with this tag are confirmed correct (ignore list)"),
    )

    def warning(self, ctx):
        tag = ctx.params.get("relabel_tag") or "dupes:relabel"
        try:
            n = ctx.target_view().count_sample_tags().get(tag, 0)
        except Exception:
            n = "the"
        return "%s samples tagged '%s' are relabeled" % (n, tag)

    def run(self, ctx, params, progress):
        run = dupes_run_params(ctx.dataset, params["run_key"])
        view = ctx.target_view()
        relabel_view = view.match_tags(params["relabel_tag"])
        keep_view = view.match_tags(params["keep_tag"])
        suggestion = run["suggestion_field"]
        if len(relabel_view) and suggestion not in view.get_field_schema():
            raise InputError("Field '%s' is missing: run compute_dupes first" % suggestion)
        ids, labels = (
            relabel_view.values(["id", suggestion]) if len(relabel_view) else ([], [])
        )
        no_label = [i for i, l in zip(ids, labels) if not l]
        if no_label:
            raise InputError(
                "%d sample(s) tagged '%s' have no '%s' to relabel to (e.g. %s); "
                "untag them or set their label by hand"
                % (len(no_label), params["relabel_tag"], suggestion, no_label[0])
            )
        keep = keep_view.values("id")
        summary = record_review(ctx.dataset, run, ids, labels, keep)
        done = ctx.dataset.select(list(ids) + list(keep))
        done.untag_samples([params["relabel_tag"], params["keep_tag"]])
        return summary


class RevertDupesReview(ActionOperator):
    name = "revert_dupes_review"
    label = "Label noise: revert dupes relabeling"
    description = "Restores the original labels of samples relabeled by a dupes review"
    destructive = True
    params = (
        RUN_KEY_PARAM,
        Param("clear_ignore_list", True, "Clear ignore list",
              "Also take the target samples off the ignore list"),
    )

    def warning(self, ctx):
        return "labels changed by a dupes review are restored"

    def run(self, ctx, params, progress):
        run = dupes_run_params(ctx.dataset, params["run_key"])
        view = ctx.target_view()
        result = lnc.revert_corrections(
            ctx.dataset, run["label_field"], ids=view.values("id"), source=SOURCE
        )
        cleared = 0
        ignore = run["ignore_field"]
        if params["clear_ignore_list"] and ignore in view.get_field_schema():
            from fiftyone import ViewField as F

            ignored = view.match(F(ignore) == True).values("id")  # noqa: E712
            if ignored:
                write_sample_fields(ctx.dataset, ignored, {ignore: [False] * len(ignored)})
            cleared = len(ignored)
        return {"num_reverted": result["num_reverted"], "num_unignored": cleared}


class ExportDupesCorrected(ActionOperator):
    name = "export_dupes_corrected"
    label = "Label noise: export the corrected dataset"
    description = (
        "Writes the target view as <dir>/<label>/<file> with corrected labels "
        "(or without the dupes)"
    )
    params = (
        Param("dir", "", "Export directory", "Folder to create (must be empty)"),
        RUN_KEY_PARAM,
        Param(
            "mode",
            "relabel",
            "Dupes",
            "relabel: export every sample with its current (corrected) label; "
            "expunge: leave out samples relabeled by a dupes review and "
            "samples still flagged as dupes",
            choices=("relabel", "expunge"),
        ),
    )

    def run(self, ctx, params, progress):
        from fiftyone import ViewField as F

        root = _review_dir(params["dir"])
        if params["mode"] not in ("relabel", "expunge"):
            raise InputError("mode must be 'relabel' or 'expunge', got %r" % params["mode"])
        run = dupes_run_params(ctx.dataset, params["run_key"])
        label_field = run["label_field"]
        view = ctx.target_view()
        check_label_field(view, label_field)
        view = view.exists(label_field)
        dropped = 0
        if params["mode"] == "expunge":
            drop = set(lnc.corrected_ids(ctx.dataset, label_field, source=SOURCE))
            if run["flag_field"] in view.get_field_schema():
                drop |= set(view.match(F(run["flag_field"]) == True).values("id"))  # noqa: E712
            before = len(view)
            view = view.exclude(list(drop))
            dropped = before - len(view)
        if os.path.exists(root) and os.listdir(root):
            raise InputError("'%s' is not empty: pick a new folder" % root)
        ids, paths, labels = view.values(["id", "filepath", label_field + ".label"])
        folders = sp.class_folders(labels)
        folder_of = {c: f for f, c in folders.items()}
        os.makedirs(root, exist_ok=True)
        rows, used, missing = [], {}, []
        for k, (sid, path, label) in enumerate(zip(ids, paths, labels)):
            folder = folder_of[label]
            os.makedirs(sp.join_inside(root, folder), exist_ok=True)
            name = sp.unique_name(
                sp.safe_file_name(os.path.basename(path)), used.setdefault(folder, set())
            )
            try:
                shutil.copy2(path, sp.join_inside(root, folder, name))
            except OSError as e:
                missing.append("%s (%s)" % (path, type(e).__name__))
                continue
            rows.append({"file": folder + "/" + name, "label": label, "id": sid})
            if k % 500 == 0:
                progress(k / max(len(ids), 1), "copied %d/%d" % (k, len(ids)))
        with open(sp.join_inside(root, "labels.json"), "w", encoding="utf-8") as f:
            json.dump({"classes": folders, "files": rows}, f, indent=1, ensure_ascii=False)
        return {
            "dir": root,
            "num_exported": len(rows),
            "num_expunged": dropped,
            "num_missing_files": len(missing),
            "missing": missing[:20],
        }


def _review_dir(path, must_exist=False):
    """The folder named by ``dir`` (any but the filesystem root);
    ``must_exist``: a folder to read back."""
    return sp.resolve_dir(
        path, "dir", "the folder to write/read the review in",
        "Refusing to use the filesystem root as review folder",
        missing="Review folder '{root}' does not exist" if must_exist else None,
    )


def prepare_review_dir(root, overwrite):
    """Makes ``root`` usable: new/empty, or (overwrite) a previous export:
    only the files and class folders its manifest lists are deleted."""
    sp.prepare_dir(root, overwrite, listed=_listed, what="dupes export")


def _listed(root):
    manifest = read_manifest(root)
    return list(manifest["files"]) + list(LISTINGS), list(manifest.get("classes", {}))
