"""Pixel agreement of two images after the best flip and crop: is one a copy of the other?

Embeddings place a copy of an image (flipped, cropped, re-encoded) *near*
its source, but other photos of the same scene sit just as near: in the
benchmark's CIFAR-10 sets the source of a planted copy is its nearest
neighbour for 71-100% of copies, yet at 0.2-1.5 times the dataset's typical
nearest-neighbour distance, where unrelated pairs also sit. Copy detection
therefore verifies candidate pairs on the pixels (the retrieve-then-verify
scheme of image copy detection, e.g. the DISC21 baselines, Douze et al.
2021, with a dense template search in place of local descriptors, which
tiny thumbnails do not support):

1. Both images are reduced to ``size x size`` thumbnails (area averaging;
   the caller may pass any size, they are resampled here).
2. A grid of geometric transforms of one image: square windows of side
   ``s * size`` for ``s`` in :data:`SCALES` (1 down to 0.75: crops of up
   to a quarter of each side), at every ``step``-pixel offset (the last
   offset included), each resampled back to ``size x size`` (bilinear,
   as one matrix product per axis), with and without a left-right flip.
3. The Pearson correlation of every transform with the other image, over
   all pixels and channels (brightness and contrast changes do not count);
   the same with the roles swapped (either image may be the crop of the
   other); the maximum is the score.

A score of ``r`` means the aligned thumbnails share ``r**2`` of their
pixel variance. The search runs at 16 x 16 (:data:`SIZE`), then refines
the best window locally and scores it at 32 x 32 (:data:`VERIFY_SIZE`),
where details that the coarse thumbnail blurs away count. The default
threshold of :mod:`methods.near_duplicates` (0.95: 90% shared variance)
was set from the benchmark's planted copies (flipped: 1.0; cropped 28/32
and resized: >= 0.98; JPEG quality 40: >= 0.947, 98.5% above 0.95) and the
nearest-neighbour pairs of real CIFAR-10 images (about 0.5% above 0.95,
nearly all near-identical photos by eye). Known weakness: a small object
on a uniform background (a plane in the sky, a ship on the horizon, a
garment silhouette on black) correlates mostly through the background,
and two different such images can pass (benchmark: 2 of ~25 real CIFAR
groups; Fashion-MNIST silhouettes of one garment type group together).
A constant thumbnail has no correlation: its pairs get ``nan``.

Cost: ``2 * 2 * 80`` transforms per pair in the search (80 windows at 16
pixels, flipped and not, either image moved), each two ``size^3`` matrix
products, plus 3 local rounds of 27: about 2-3 ms per pair on 2 cores.

No FiftyOne here; torch does the products (``device`` selects where).
"""

import numpy as np

__all__ = ["REFINE_ROUNDS", "SCALES", "SIZE", "VERIFY_SIZE", "aligned_correlation", "crop_windows"]

#: side of the compared thumbnails (pixels)
SIZE = 16
#: window sides, as fractions of the image side, searched for crops
SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75)
#: rounds of local search around the coarse search's best window
REFINE_ROUNDS = 2
#: side at which the best window found is scored (finer than the search)
VERIFY_SIZE = 32


def crop_windows(size=SIZE, scales=SCALES, step=1.0):
    """The ``(top, left, side)`` windows searched, in thumbnail pixels."""
    windows = []
    for scale in scales:
        side = scale * size
        last = size - side
        offsets = [0.0] if last <= 1e-9 else np.unique(np.append(np.arange(0.0, last + 1e-9, step), last))
        windows.extend((float(top), float(left), side) for top in offsets for left in offsets)
    return windows


def _resampling(size, starts, sides):
    """(N, size, size) bilinear resampling of the segments [start, start +
    side) of an axis of ``size`` pixels onto ``size`` pixels (pixel centres)."""
    starts = np.atleast_1d(np.asarray(starts, dtype=np.float64))
    sides = np.broadcast_to(np.asarray(sides, dtype=np.float64), starts.shape)
    coords = starts[:, None] + (np.arange(size) + 0.5)[None, :] * sides[:, None] / size - 0.5
    coords = np.clip(coords, 0, size - 1)
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    weight = (coords - lo).astype(np.float32)
    matrix = np.zeros((len(starts), size, size), np.float32)
    which = np.repeat(np.arange(len(starts)), size)
    out = np.tile(np.arange(size), len(starts))
    np.add.at(matrix, (which, out, lo.ravel()), (1.0 - weight).ravel())
    np.add.at(matrix, (which, out, hi.ravel()), weight.ravel())
    return matrix


def _transforms(size, windows):
    """Row and column resampling matrices of ``windows`` (top, left, side,
    flip) rows: (N, size, size) each; a flip reverses the columns."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    rows = _resampling(size, windows[:, 0], windows[:, 2])
    cols = _resampling(size, windows[:, 1], windows[:, 2])
    flip = windows[:, 3] > 0.5
    cols[flip] = cols[flip][:, ::-1]
    return rows, cols


def _grid(size, scales, step):
    """The coarse search: every window of :func:`crop_windows`, unflipped and flipped."""
    return np.array([(top, left, side, flip) for top, left, side in crop_windows(size, scales, step)
                     for flip in (0.0, 1.0)])


def _standardised(x):
    x = x - x.mean(-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    return x / norm.clamp_min(1e-6), norm.squeeze(-1) > 1e-3


def _scores(src, dst, rows, cols):
    """Correlation of every transform of ``src`` with ``dst``: rows/cols
    (T, S, S) shared by all pairs, or (m, T, S, S) per pair -> (m, T)."""
    import torch

    if rows.dim() == 3:
        rows, cols = rows[None], cols[None]
    moved = torch.matmul(torch.matmul(rows[:, :, None], src[:, None]), cols.transpose(-1, -2)[:, :, None])
    moved, _ = _standardised(moved.flatten(2))
    target, ok = _standardised(dst.flatten(1))
    return (moved * target[:, None]).sum(-1), ok


def aligned_correlation(a, b, size=SIZE, scales=SCALES, step=1.0, refine=REFINE_ROUNDS,
                        verify_size=VERIFY_SIZE, batch_size=64, device="cpu"):
    """The best Pearson correlation of ``a[i]`` and ``b[i]`` over flips and crops.

    Args:
        a, b: arrays (m, h, w, c) of images (uint8 or float; any common
            ``h x w``, ``c`` channels), pairs row by row
        size (16): side of the compared thumbnails
        scales (:data:`SCALES`): window sides searched, fractions of the side
        step (1.0): offset step of the coarse search, thumbnail pixels
        refine (2): rounds of local search around each pair's best window
            (offsets and side moved by half the previous step, 27 windows a
            round), for crops between the grid's points
        verify_size (32): the best window is scored at this side (one more
            local round, half-pixel moves), where details that a coarse
            thumbnail blurs away count; None: the score at ``size``
        batch_size (64): pairs per product (memory ~ batch x 160 x c x size^2 floats)
        device ("cpu"): torch device

    Returns:
        float (m,) in [-1, 1]; ``nan`` where either image is constant
    """
    import torch
    import torch.nn.functional as F

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError("a and b must be arrays (m, h, w, c) of one shape, got %s and %s"
                         % (a.shape, b.shape))
    grid = _grid(size, scales, step)
    rows, cols = (torch.from_numpy(m).to(device) for m in _transforms(size, grid))
    side_step = size * (min(np.diff(sorted(scales))) if len(scales) > 1 else 0.05)
    moves = np.array([(dy, dx, ds) for dy in (-1, 0, 1) for dx in (-1, 0, 1) for ds in (-1, 0, 1)],
                     dtype=np.float64)

    def thumbs(x, side=size):
        x = torch.as_tensor(x, dtype=torch.float32, device=device).permute(0, 3, 1, 2)
        if x.shape[-2:] == (side, side):
            return x
        mode = "area" if x.shape[-1] >= side else "bilinear"
        return F.interpolate(x, size=(side, side), mode=mode)

    def local(src, dst, window, shift, grow, side):
        near = np.repeat(window[:, None], len(moves), axis=1)
        near[:, :, 2] = np.clip(near[:, :, 2] + moves[None, :, 2] * grow, side / 2.0, side)
        near[:, :, 0] += moves[None, :, 0] * shift
        near[:, :, 1] += moves[None, :, 1] * shift
        limit = side - near[:, :, 2]
        near[:, :, 0] = np.clip(near[:, :, 0], 0, limit)
        near[:, :, 1] = np.clip(near[:, :, 1], 0, limit)
        r, c = _transforms(side, near.reshape(-1, 4))
        shape = (len(window), len(moves), side, side)
        score, _ = _scores(src, dst, torch.from_numpy(r).to(device).reshape(shape),
                           torch.from_numpy(c).to(device).reshape(shape))
        v, i = (t.cpu().numpy() for t in score.max(1))
        return v, near[np.arange(len(window)), i]

    out = np.full(len(a), np.nan, dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(a), batch_size):
            ba, bb = a[start:start + batch_size], b[start:start + batch_size]
            pa, pb = thumbs(ba), thumbs(bb)
            fa, fb = (thumbs(ba, verify_size), thumbs(bb, verify_size)) if verify_size else (None, None)
            best = np.full(len(pa), -1.0)
            varied = np.ones(len(pa), dtype=bool)
            for src, dst, fsrc, fdst in ((pa, pb, fa, fb), (pb, pa, fb, fa)):
                score, ok = _scores(src, dst, rows, cols)
                varied &= ok.cpu().numpy()
                value, index = (t.cpu().numpy() for t in score.max(1))
                window = grid[index]
                shift, grow = step / 2.0, side_step / 2.0
                for _ in range(refine):
                    v, near = local(src, dst, window, shift, grow, size)
                    better = v > value
                    value = np.where(better, v, value)
                    window = np.where(better[:, None], near, window)
                    shift, grow = shift / 2.0, grow / 2.0
                if verify_size:
                    k = verify_size / size
                    scaled = window * np.array([k, k, k, 1.0])
                    value, _ = local(fsrc, fdst, scaled, 0.5, 0.5, verify_size)
                best = np.maximum(best, value)
            out[start:start + len(pa)] = np.where(varied, np.clip(best, -1.0, 1.0), np.nan)
    return out
