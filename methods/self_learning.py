"""Deep Self-Learning (Han, Luo & Wang, ICCV 2019): prototype label correction.

Every sample gets a corrected label ŷ: the class whose *prototypes* it is most
similar to on average. Similarity is the cosine similarity of feature vectors
(given embeddings, or the penultimate features of a classifier trained in the
iterative mode).

Label-correction phase (:func:`methods.prototypes.correct_labels`, whose
docstring gives every step): per class, sample m labelled rows (paper:
1280), find the p (8) prototypes of highest density ρ among the rows that are
not too similar to a denser one (η < 0.95), then give every sample the class
whose prototypes it is most similar to on average; the confidence is the
margin between the two best classes (in [0, 2], not a probability).

Iterative mode (:func:`self_learning` with ``train=True``): a classifier
F = f∘G is trained for ``epochs`` epochs with
L = (1 − α)·CE(F(x), y) + α·CE(F(x), ŷ), α = 0 in the first epoch (no ŷ yet)
and α = 0.5 (the paper's value) afterwards; after every epoch the correction
phase re-runs on the current penultimate features G(x) of all samples.
"""

import numpy as np

from .prototypes import correct_labels, select_prototypes

__all__ = ["PAPER_DEFAULTS", "correct_labels", "select_prototypes", "self_learning"]

PAPER_DEFAULTS = dict(
    samples_per_class=1280,
    num_prototypes=8,
    top_fraction=0.4,
    eta_max=0.95,
    alpha=0.5,
)


def self_learning(
    features=None,
    labels=None,
    num_classes=None,
    train=False,
    model="mlp",
    image_paths=None,
    epochs=10,
    alpha=0.5,
    hidden_dim=512,
    lr=1e-3,
    weight_decay=5e-4,
    batch_size=256,
    cnn_arch="resnet18",
    cnn_weights=None,
    image_size=32,
    samples_per_class=1280,
    num_prototypes=8,
    top_fraction=0.4,
    eta_max=0.95,
    seed=0,
    device=None,
    progress=None,
):
    """Deep Self-Learning label correction, one-shot or iterative.

    Args:
        features: float array (n, d) of embeddings (needed unless
            ``model="cnn"``)
        labels: int array (n,) of given (noisy) class indices
        num_classes (None): default ``labels.max() + 1``
        train (False): False = one correction phase on ``features``; True =
            the paper's iterative training (see module docstring)
        model ("mlp"): in iterative mode, ``"mlp"`` (2 hidden layers on the
            standardised embeddings; G = the last hidden layer) or ``"cnn"``
            (a torchvision ``cnn_arch`` on the images in ``image_paths``,
            G = its pooled penultimate features)
        image_paths (None): image files, required for ``model="cnn"``
        epochs (10): training epochs (one correction phase after each)
        alpha (0.5): the paper's α for epochs 2, 3, ... (epoch 1 uses 0)
        hidden_dim (512), lr (1e-3, Adam), weight_decay (5e-4),
        batch_size (256): classifier training settings
        cnn_arch ("resnet18"), cnn_weights (None = random init; "DEFAULT" =
            torchvision's ImageNet weights), image_size (32): CNN settings
        samples_per_class (1280), num_prototypes (8), top_fraction (0.4),
        eta_max (0.95): correction-phase settings (paper defaults)
        seed (0): seeds sampling, initialisation and shuffling
        device (None): torch device, default CUDA when available
        progress (None): ``progress(fraction, message)``

    Returns:
        the dict of :func:`correct_labels` for the final phase, plus in
        iterative mode ``prediction`` (int (n,), argmax F(x)),
        ``prediction_confidence`` (float32 (n,), its softmax probability) and
        ``history`` (one dict per epoch: alpha, loss, fraction of ŷ ≠ y,
        agreement of the prediction with y)
    """
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(num_classes or labels.max() + 1)
    correction = dict(
        num_classes=num_classes,
        samples_per_class=samples_per_class,
        num_prototypes=num_prototypes,
        top_fraction=top_fraction,
        eta_max=eta_max,
    )
    if not train:
        if features is None:
            raise ValueError("features are required when train=False")
        return correct_labels(features, labels, seed=seed, progress=progress, **correction)
    from .self_learning_train import train_self_learning

    return train_self_learning(
        features=features,
        labels=labels,
        model=model,
        image_paths=image_paths,
        epochs=epochs,
        alpha=alpha,
        hidden_dim=hidden_dim,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        cnn_arch=cnn_arch,
        cnn_weights=cnn_weights,
        image_size=image_size,
        correction=correction,
        seed=seed,
        device=device,
        progress=progress,
    )
