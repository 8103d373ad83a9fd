"""Small thumbnails of samples or objects, for the pixel check of near-duplicates.

:func:`thumbnail_reader` returns the callable that
:func:`methods.near_duplicates.near_duplicate_groups` asks for the images of
the candidate rows only: samples are their whole image, objects (patches
views) the crop of their bounding box. JPEGs are decoded at a reduced scale
(PIL's ``draft``), so a thumbnail costs a fraction of a full decode. An image
that cannot be read (missing file, not an image, video) is reported as such
and its pairs keep the embedding rule. Data layer: no operator, no ``ctx``.
"""

import numpy as np

from .objects import is_patches

__all__ = ["THUMBNAIL_SIZE", "thumbnail_reader"]

#: side of the thumbnails read (pixels); the pixel check resamples them
THUMBNAIL_SIZE = 32


def _open(path, draft):
    from PIL import Image

    with Image.open(path) as img:
        if draft:
            img.draft("RGB", draft)
        return img.convert("RGB")


def _crop(img, box, size):
    from PIL import Image

    if box is not None:
        w, h = img.size
        x, y, bw, bh = (float(v) for v in box)
        left, top = int(np.floor(x * w)), int(np.floor(y * h))
        right = max(int(np.ceil((x + bw) * w)), left + 1)
        bottom = max(int(np.ceil((y + bh) * h)), top + 1)
        img = img.crop((left, top, right, bottom))
    return np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def thumbnail_reader(view, ids, filepaths, label_field=None, size=THUMBNAIL_SIZE):
    """``rows -> (images uint8 (m, size, size, 3), readable bool (m,))``.

    Args:
        view: the target view (samples, or a patches view of ``label_field``)
        ids: the ids of the rows (samples, or patches) in row order
        filepaths: the media path of each row
        label_field (None): on a patches view, the objects' field (its
            ``bounding_box`` is cropped)
        size (32): thumbnail side
    """
    patches = label_field is not None and is_patches(view)

    def read(rows):
        rows = np.asarray(rows, dtype=np.int64)
        boxes = [None] * len(rows)
        if patches and len(rows):
            wanted = [str(ids[r]) for r in rows]
            got = view.select(wanted, ordered=True).values(["id", label_field + ".bounding_box"])
            by_id = dict(zip(*got))
            boxes = [by_id.get(i) for i in wanted]
        images = np.zeros((len(rows), size, size, 3), dtype=np.uint8)
        readable = np.zeros(len(rows), dtype=bool)
        by_path = {}
        for k, r in enumerate(rows):
            if not (patches and boxes[k] is None):
                by_path.setdefault(filepaths[r], []).append(k)
        for path, ks in by_path.items():  # each file decoded once
            try:
                img = _open(path, None if patches else (size * 2, size * 2))
                for k in ks:
                    images[k] = _crop(img, boxes[k], size)
            except (OSError, ValueError, SyntaxError):
                continue
            readable[ks] = True
        return images, readable

    return read
