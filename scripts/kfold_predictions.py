"""Out-of-sample predictions for ``pred_field``: K-fold on your embeddings.

A model's predictions only help find wrong labels when each sample is
predicted by a model that did *not* train on its label: a model trained on
these very labels memorises their errors (the plugin detects such
predictions and leaves them out). This script trains ``--folds`` models,
each on all folds but one, and predicts the held-out fold, then stores the
result as ``fo.Classification`` with logits and sets the class order
(``dataset.classes[field]``)::

    python scripts/kfold_predictions.py my-dataset --embeddings embeddings \\
        --label-field ground_truth --pred-field predictions --folds 5

then::

    find = foo.get_operator("@label-noise/curation/find_label_issues")
    find(dataset, pred_field="predictions")

A multinomial logistic regression on embeddings is what this script fits
(scikit-learn, CPU, minutes at 100,000 samples). Stronger predictions (a
network fine-tuned on the images) help more: do the same K-fold split with
your own training code and write the held-out logits the same way
(:func:`store_predictions`).
"""

import argparse

import numpy as np


def kfold_probabilities(x, labels, folds=5, seed=0, C=0.1):
    """Held-out class probabilities: (n, k), row i from the model that did
    not see sample i. Stratified folds, standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, labels, cv=split, method="predict_proba")


def store_predictions(dataset, ids, probabilities, classes, field="predictions"):
    """Writes ``fo.Classification(label, confidence, logits)`` per sample
    (log-probabilities as logits) and ``dataset.classes[field] = classes``."""
    import fiftyone as fo

    p = np.asarray(probabilities, np.float64)
    logits = np.log(np.clip(p, 1e-12, 1.0)).astype(np.float32)
    values = {
        sid: fo.Classification(label=classes[int(row.argmax())], confidence=float(row.max()),
                               logits=z)
        for sid, row, z in zip(ids, p, logits)
    }
    dataset.set_values(field, values, key_field="id")
    dataset.classes[field] = list(classes)
    dataset.save()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--embeddings", default="embeddings")
    parser.add_argument("--label-field", default="ground_truth")
    parser.add_argument("--pred-field", default="predictions")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import fiftyone as fo

    dataset = fo.load_dataset(args.dataset)
    view = dataset.exists(args.label_field + ".label").exists(args.embeddings)
    ids, names, x = view.values(["id", args.label_field + ".label", args.embeddings])
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in names])
    probs = kfold_probabilities(np.asarray(x, np.float32), labels, args.folds, args.seed)
    store_predictions(dataset, ids, probs, classes, args.pred_field)
    print("wrote %d out-of-sample predictions to '%s' (%d folds); held-out agreement with "
          "the given labels %.1f%%" % (len(ids), args.pred_field, args.folds,
                                       100 * (probs.argmax(1) == labels).mean()))


if __name__ == "__main__":
    main()
