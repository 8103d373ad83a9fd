"""Label-noise methods on plain arrays (numpy / torch / faiss / sklearn).

No module here imports fiftyone: each takes arrays and returns arrays, so it
can be tested and benchmarked without a database. Heavy libraries are
imported inside functions so that loading the plugin stays fast. This file
imports nothing; import the modules themselves (``methods.scan``, ...).
Every module lists its public API in ``__all__``; names starting with ``_``
stay inside their file.

The package by role:

Detectors (a per-sample score or verdict for each given label)
    ``knn_disagreement``  share of the K nearest neighbours (cosine) that
                          disagree with the label
    ``confident_learning`` Confident Learning (Northcutt et al.): per-class
                          thresholds, the confident joint, pruning, and the
                          anchor-based noise posterior
    ``dupes``             DUPES: classifiers trained on random halves vote
                          on the other half (``count_dupes``)
    ``training_value``    Training-ValueNet (Smyth et al.): runs
                          ``training_value_mc`` (Monte Carlo estimates) and
                          ``value_network`` (per-class value regressors)
    ``cleannet``          CleanNet (Lee et al.): label-conditional reference
                          sets and a similarity network trained on verified
                          labels
    ``self_learning``     Deep Self-Learning (Han et al.): prototype label
                          correction (``prototypes``), iterative mode in
                          ``self_learning_train``
    ``scan``              SCAN (Van Gansbeke et al.): clustering heads on
                          mined neighbours, self-labelling; pretext features
                          from ``simclr``

Estimation (how much noise, how sure, how to combine evidence)
    ``noise_estimate``    pooled class probabilities, the estimated noise
                          rate, per-sample p(wrong), label probabilities from
                          (predicted, confidence) pairs
    ``consensus``         normalised detector scores combined into one
                          noise score (learned weights from verdicts, AUROC)
    ``audit``             audit samples, Wilson intervals, estimates from
                          verdicts
    ``predictions``       model predictions as class probabilities: class
                          alignment, in-sample check, the other-class
                          suggestion
    ``pooling``           the log-linear pool of several probability sources

Issue types (what kind of problem a flagged label is)
    ``label_ambiguity``, ``outlier_score``, ``near_duplicates`` (its pixel
    check in ``aligned_correlation``), ``overlapping_classes``, and
    ``issue_types`` (one type per sample)

Training helpers
    ``linear``            multinomial logistic regression (full-batch L-BFGS)
    ``out_of_sample``     cross-fitted out-of-sample probabilities (logreg,
                          MLP, kNN, their pooled ensemble)
    ``embeddings``        torchvision backbones and their preprocessing
    ``simclr``            SimCLR pretext training (NT-Xent)
    ``self_learning_train``, ``training_value_mc``, ``value_network``: the
                          torch parts of their detectors

Shared low layers
    ``neighbours``        cosine K nearest neighbours (exact or IVF faiss,
                          recall-tuned), shared between detectors in a run
    ``arrays``            one copy of each array helper: standardisation,
                          L2 normalisation, log-softmax, the most probable
                          other class, the torch device choice

Layering: a module imports only numpy, scipy, sklearn, torch (torchvision),
faiss, PIL and other ``methods`` modules, and no import cycle exists between
them (``scripts/import_graph.py`` checks).
"""
