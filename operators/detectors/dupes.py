"""Operators: Dupes (repeated swapped 50:50 trainings) and its review loop.

- ``compute_dupes`` writes ``dupe_count`` (int), ``dupe_label`` (str) and
  ``is_dupe`` (bool) on every labeled sample of the target view.
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
``<label_field>_original``, record in ``<label_field>_correction``).
"""

import json
import os
import shutil

import numpy as np

from ...store import corrections as lnc
from ...store import runs as lnr
from ...store import safe_paths as sp
from ..base import ActionOperator, Computed, DetectorOperator
from ..forms import Param, TAG_PARAM, device_param, resolve_device
from ...store.data import InputError, check_label_field, load_inputs, write_sample_fields

SOURCE = "dupes"
MANIFEST = "dupes_manifest.json"
BEFORE = "before.txt"
AFTER = "after.txt"
LISTINGS = (MANIFEST, BEFORE, AFTER)


class ComputeDupes(DetectorOperator):
    name = "compute_dupes"
    label = "Label noise: Dupes (repeated 50:50 trainings)"
    description = (
        "Trains a classifier on one half of every class and predicts the "
        "other, swapped, for several rounds; counts how often each sample is "
        "predicted as one other class"
    )
    method = "dupes"
    output_field = "dupe_count"
    method_params = (
        device_param(),
        Param("rounds", 10, "Rounds", "50:50 split rounds (2 trainings each)"),
        Param(
            "threshold",
            8,
            "Dupe threshold",
            "A sample is a dupe when it is predicted as the same other class "
            "in at least this many rounds (the method uses 10, 9 or 8 of 10)",
        ),
        Param(
            "classifier",
            "logreg",
            "Classifier",
            "logreg: fast logistic regression on the embeddings (default); "
            "mlp: small neural net on the embeddings; sklearn_logreg: "
            "scikit-learn's; cnn: fine-tunes a torchvision model on the "
            "images (slow, for a GPU)",
            choices=("logreg", "mlp", "sklearn_logreg", "cnn"),
        ),
        Param(
            "suggestion_field",
            "dupe_label",
            "Dupe label field",
            "Where to store the other class a sample is most often predicted as",
        ),
        Param(
            "flag_field",
            "is_dupe",
            "Dupe flag field",
            "Boolean field: dupe_count >= threshold and not on the ignore list",
        ),
        Param(
            "ignore_field",
            "dupes_ignore",
            "Ignore-list field",
            "Boolean field marking samples confirmed correct in a review; "
            "they are used for training but never flagged",
        ),
        Param("cnn_model", "resnet18", "CNN model", "torchvision model (cnn only)"),
        Param(
            "cnn_weights",
            "DEFAULT",
            "CNN weights",
            "DEFAULT (ImageNet, downloaded once), a local state_dict path, or "
            "empty for random init (cnn only)",
        ),
        Param("cnn_epochs", 3, "CNN epochs", "Epochs per training (cnn only)"),
        Param("cnn_image_size", 224, "CNN image size", "Input size (cnn only)"),
        Param("cnn_batch_size", 64, "CNN batch size", "Batch size (cnn only)"),
        TAG_PARAM,
    )

    def compute(self, ctx, view, params, progress):
        from ...methods.dupes import dupes

        classifier = params["classifier"]
        cnn = classifier == "cnn"
        for key in ("suggestion_field", "flag_field", "ignore_field"):
            if not str(params[key]).isidentifier():
                raise InputError("%s must be a field name, got %r" % (key, params[key]))
        if int(params["rounds"]) < 1:
            raise InputError("rounds must be >= 1, got %s" % params["rounds"])
        inputs = load_inputs(
            view,
            params["label_field"],
            params["embeddings_field"],
            need_embeddings=not cnn,
            need_filepaths=cnn,
        )
        ignore = read_ignore(view, inputs.ids, params["ignore_field"])
        options = {}
        if cnn:
            options = dict(
                model=params["cnn_model"],
                weights=params["cnn_weights"] or None,
                epochs=int(params["cnn_epochs"]),
                image_size=int(params["cnn_image_size"]),
                batch_size=int(params["cnn_batch_size"]),
            )

        def method_progress(fraction, message):
            progress(0.05 + 0.9 * fraction, message)

        found = dupes(
            inputs.y,
            embeddings=inputs.embeddings,
            filepaths=inputs.filepaths,
            num_classes=len(inputs.classes),
            rounds=int(params["rounds"]),
            threshold=int(params["threshold"]),
            classifier=classifier,
            ignore=ignore,
            seed=int(params["seed"]),
            device=resolve_device(params["device"]),
            progress=method_progress,
            **options,
        )
        dupe_label = [
            inputs.classes[c] if c >= 0 else None for c in found["dupe_label"]
        ]
        fields = {
            params["output_field"]: found["dupe_count"],
            params["suggestion_field"]: dupe_label,
            params["flag_field"]: found["flagged"],
        }
        histogram = np.bincount(
            found["dupe_count"], minlength=int(params["rounds"]) + 1
        ).tolist()
        return Computed(
            ids=inputs.ids,
            fields=fields,
            flagged=found["flagged"],
            summary={
                "skipped": inputs.skipped,
                "num_ignored": int(ignore.sum()),
                "mean_round_accuracy": round(
                    float(sum(found["round_accuracy"]) / len(found["round_accuracy"])), 4
                ),
            },
            results={
                "round_accuracy": found["round_accuracy"],
                "dupe_count_histogram": histogram,
                # the rounds' mean out-of-sample probabilities: evidence for
                # compute_noise_score at no extra training
                "probabilities": lnr.encode_probabilities(inputs.ids, found["probabilities"]),
                "classes": inputs.classes,
            },
            info={
                "skipped": inputs.skipped,
                "classes": inputs.classes,
                "num_ignored": int(ignore.sum()),
            },
        )


def read_ignore(view, ids, ignore_field):
    """Bool array aligned with ``ids``: True where ``ignore_field`` is True."""
    if ignore_field not in view.get_field_schema():
        return np.zeros(len(ids), dtype=bool)
    sample_ids, values = view.values(["id", ignore_field])
    flagged = {s for s, v in zip(sample_ids, values) if v is True}
    return np.array([str(i) in flagged for i in ids], dtype=bool)


# ---------------------------------------------------------------- review ---


def dupes_run_params(dataset, run_key):
    """The parameters of Dupes run ``run_key`` (fields it wrote, label field)."""
    if run_key not in dataset.list_runs():
        raise InputError(
            "No Dupes run '%s' on dataset '%s': run compute_dupes first (or "
            "pass run_key=<the key you used>)" % (run_key, dataset.name)
        )
    config = dataset.get_run_info(run_key).config
    if getattr(config, "method", None) != "dupes":
        raise InputError(
            "Run '%s' is a '%s' run, not a Dupes run" % (run_key, config.method)
        )
    params = dict(config.params)
    for key, default in (
        ("output_field", "dupe_count"),
        ("suggestion_field", "dupe_label"),
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


RUN_KEY_PARAM = Param("run_key", "dupes", "Dupes run", "Run key of the compute_dupes run")


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
        _prepare_dir(root, params["overwrite"])
        folders = _class_folders(classes + [x for x in labels if x])
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
        _check_ids(ctx.dataset, ids + keep)
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
        folders = _class_folders(labels)
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
    if not path or not isinstance(path, str):
        raise InputError("dir is required: the folder to write/read the review in")
    root = os.path.realpath(os.path.expanduser(path))
    if root == os.path.sep:
        raise InputError("Refusing to use the filesystem root as review folder")
    if must_exist and not os.path.isdir(root):
        raise InputError("Review folder '%s' does not exist" % root)
    return root


def _prepare_dir(root, overwrite):
    """Makes ``root`` usable: new/empty, or (overwrite) a previous export."""
    if not os.path.exists(root):
        os.makedirs(root)
        return
    if not os.path.isdir(root):
        raise InputError("'%s' exists and is not a folder" % root)
    if not os.listdir(root):
        return
    if not overwrite:
        raise InputError(
            "'%s' is not empty. Pick a new folder, or pass overwrite=True to "
            "replace a previous dupes export there" % root
        )
    manifest = read_manifest(root)
    for rel in list(manifest["files"]) + list(LISTINGS):
        path = os.path.join(root, *rel.split("/"))
        if os.path.lexists(path) and sp.inside(root, path) and os.path.isfile(path):
            os.remove(path)
    for folder in manifest.get("classes", {}):
        path = os.path.join(root, folder)
        if os.path.isdir(path) and sp.inside(root, path) and not os.listdir(path):
            os.rmdir(path)
    if os.listdir(root):
        raise InputError(
            "'%s' still holds files that the previous export did not write (%s); "
            "move them away first" % (root, sorted(os.listdir(root))[:5])
        )


def _class_folders(labels):
    """{safe folder name: class} for the distinct non-empty class names."""
    folders = {}
    for c in sorted({x for x in labels if isinstance(x, str) and x}):
        folder = sp.safe_name(c)
        if folder in folders:  # only possible for shortened long names
            folder = sp.unique_name(folder, set(folders))
        folders[folder] = c
    return folders


def _check_ids(dataset, ids):
    if not ids:
        return
    found = set(dataset.select(list(ids)).values("id"))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(
            "%d sample(s) of the review are not in dataset '%s' (e.g. %s): "
            "import the folder into the dataset it was exported from"
            % (len(missing), dataset.name, missing[0])
        )
