"""torchvision backbones for the offline (local weights) route and for SCAN.

Embeddings themselves are computed by FiftyOne (``compute_embeddings`` /
``compute_patch_embeddings``, see :mod:`operators.embeddings`); this module
only builds the torchvision networks that FiftyOne then runs, without
FiftyOne (the methods layer never imports it):

- :func:`build_backbone`: a torchvision classifier with ImageNet weights,
  weights from a local ``state_dict`` file (offline), or random weights; its
  embedding is the input of its head (:func:`head_layer`): the pooled
  penultimate features (512-d for resnet18, 2048-d for resnet50, 960-d for
  mobilenet_v3_large);
- :func:`preprocess`: torchvision's own transform for those weights (resize,
  center crop, normalise) for PIL images and numpy arrays alike;
- :func:`load_backbone`: the headless network SCAN's SimCLR pretext trains.
"""

import numpy as np

from .arrays import choose_device

__all__ = ["BACKBONES", "ToPIL", "build_backbone", "head_layer", "load_backbone", "preprocess"]

BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_large")


def build_backbone(name="resnet18", weights=None):
    """A torchvision classifier, head included, in eval mode.

    Args:
        name: one of :data:`BACKBONES`
        weights: ``"DEFAULT"`` for torchvision's pretrained ImageNet weights
            (downloaded once by torchvision, needs internet), a path to a
            local ``state_dict`` file (loaded with ``weights_only=True``), or
            ``None``/``""`` for random initialisation (tests only)
    """
    import torch
    import torchvision

    if name not in BACKBONES:
        raise ValueError("Unknown backbone '%s'; choose one of %s" % (name, BACKBONES))
    builder = getattr(torchvision.models, name)
    if weights == "DEFAULT":
        return builder(weights=torchvision.models.get_model_weights(name).DEFAULT).eval()
    model = builder(weights=None)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def head_layer(name):
    """The name of the classifier head of backbone ``name``: its input is
    the embedding (FiftyOne's ``embeddings_layer="<" + head_layer(name)``)."""
    return "fc" if name.startswith("resnet") else "classifier"


class ToPIL:
    """numpy ``HxWx3`` uint8 arrays (FiftyOne's decoded images and patches)
    to PIL images; PIL images pass through."""

    def __call__(self, image):
        from PIL import Image

        if isinstance(image, np.ndarray):
            return Image.fromarray(image)
        return image


def preprocess(name):
    """torchvision's evaluation transform of backbone ``name``'s ImageNet
    weights (resize 256 or 232, center crop 224, normalise), accepting numpy
    arrays too. Fixed output size, so FiftyOne can batch it."""
    import torchvision

    transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return torchvision.transforms.Compose([ToPIL(), transform])


def load_backbone(name="resnet18", weights="DEFAULT", device=None):
    """A torchvision backbone without its classifier, in eval mode (what
    SCAN's SimCLR pretext trains).

    Args:
        name, weights: as :func:`build_backbone`
        device: torch device; default CUDA when available, else CPU

    Returns:
        ``(model, preprocess, device)``: ``preprocess`` maps a PIL image to a
        normalised tensor
    """
    import torch

    device = choose_device(device)
    model = build_backbone(name, weights)
    setattr(model, head_layer(name), torch.nn.Identity())
    return model.to(device), preprocess(name), device
