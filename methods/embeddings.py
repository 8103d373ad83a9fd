"""Image embeddings from a torchvision backbone, in batches, on CPU or GPU.

The classifier head is removed, so the output is the pooled penultimate
feature vector (512-d for resnet18, 2048-d for resnet50, 960-d for
mobilenet_v3_large). Unreadable images are reported, never fatal.
"""

import numpy as np

BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_large")


def load_backbone(name="resnet18", weights="DEFAULT", device=None):
    """A torchvision backbone without its classifier, in eval mode.

    Args:
        name: one of :data:`BACKBONES`
        weights: ``"DEFAULT"`` for torchvision's pretrained ImageNet weights
            (downloaded once by torchvision, needs internet), a path to a local
            ``state_dict`` file (loaded with ``weights_only=True``), or
            ``None`` for random initialisation (tests only)
        device: torch device; default CUDA when available, else CPU

    Returns:
        ``(model, preprocess, device)``: ``preprocess`` maps a PIL image to a
        normalised tensor
    """
    import torch
    import torchvision

    if name not in BACKBONES:
        raise ValueError("Unknown backbone '%s'; choose one of %s" % (name, BACKBONES))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    builder = getattr(torchvision.models, name)
    weights_enum = torchvision.models.get_model_weights(name).DEFAULT
    if weights == "DEFAULT":
        model = builder(weights=weights_enum)
    else:
        model = builder(weights=None)
        if weights:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
    preprocess = weights_enum.transforms()
    if name.startswith("resnet"):
        model.fc = torch.nn.Identity()
    else:
        model.classifier = torch.nn.Identity()
    return model.eval().to(device), preprocess, device


def embed_images(paths, model, preprocess, device, batch_size=32, progress=None):
    """Embeds image files.

    Args:
        paths: image file paths
        model, preprocess, device: from :func:`load_backbone`
        batch_size (32): images per forward pass
        progress (None): optional ``callable(fraction, message)``

    Returns:
        ``(features, failed)``: float32 array (n, d) with NaN rows for images
        that could not be read, and a list of ``(index, error message)``
    """
    from PIL import Image

    def load(i):
        with Image.open(paths[i]) as img:
            return preprocess(img.convert("RGB"))

    return _embed_rows(len(paths), load, model, device, batch_size, progress, "images")


def _embed_rows(n, load, model, device, batch_size, progress, noun):
    """Runs ``model`` on ``load(i)`` for i < n in batches; rows whose ``load``
    raises are NaN and listed in ``failed`` (see :func:`embed_images`)."""
    import torch

    features, failed = None, []
    for start in range(0, n, batch_size):
        batch, rows = [], []
        for i in range(start, min(start + batch_size, n)):
            try:
                batch.append(load(i))
                rows.append(i)
            except Exception as e:  # unreadable/corrupt/missing file
                failed.append((i, "%s: %s" % (type(e).__name__, e)))
        if batch:
            with torch.inference_mode():
                out = model(torch.stack(batch).to(device)).float().cpu().numpy()
            if features is None:
                features = np.full((n, out.shape[1]), np.nan, dtype=np.float32)
            features[rows] = out
        if progress is not None:
            done = min(start + batch_size, n)
            progress(done / max(n, 1), "embedded %d/%d %s" % (done, n, noun))
    if features is None:
        features = np.full((n, 0), np.nan, dtype=np.float32)
    return features, failed


def crop_box(image, box, margin=0.1):
    """The pixels of a relative box ``[x, y, w, h]`` of a PIL image, widened
    by ``margin`` times the box size on each side (clipped to the image), as
    context for the object. At least one pixel."""
    width, height = image.size
    x, y, w, h = [float(v) for v in box]
    x0 = max(0.0, x - margin * w) * width
    y0 = max(0.0, y - margin * h) * height
    x1 = min(1.0, x + w + margin * w) * width
    y1 = min(1.0, y + h + margin * h) * height
    left, top = int(np.floor(x0)), int(np.floor(y0))
    right = max(int(np.ceil(x1)), left + 1)
    bottom = max(int(np.ceil(y1)), top + 1)
    return image.crop((left, top, min(right, width), min(bottom, height)))


def embed_boxes(paths, boxes, model, preprocess, device, batch_size=32, margin=0.1, progress=None):
    """Embeds object crops: ``boxes[i]`` (relative ``[x, y, w, h]``) of the
    image ``paths[i]`` with a context ``margin`` (:func:`crop_box`). Each
    image is decoded once for all its boxes (rows with the same path should
    be adjacent, as in a patches view).

    Returns:
        ``(features, failed)`` as :func:`embed_images`
    """
    from PIL import Image

    cache = {"path": None, "image": None}  # the last decoded image

    def load(i):
        if paths[i] != cache["path"]:
            cache["path"], cache["image"] = paths[i], None
            with Image.open(paths[i]) as img:
                cache["image"] = img.convert("RGB")
        if cache["image"] is None:
            raise OSError("unreadable image")
        return preprocess(crop_box(cache["image"], boxes[i], margin))

    return _embed_rows(len(paths), load, model, device, batch_size, progress, "objects")
