"""Pixel fingerprints: near-duplicates that any backbone would miss.

A photo's fingerprint is its 16x16 RGB thumbnail, each channel centred, the whole scaled to
unit length; its variants are the thumbnails of its centre crops to 100%, 96.7%, 93.3% and
90% of each side, plain and mirrored. Two photos' pixel similarity is the best cosine of one's
fingerprint with the other's variants, both ways round: so a copy that was resized,
re-encoded, cropped by up to 10% of each side or mirrored stays close to its original. On the
reference photos copies scored at least 0.951 and distinct photos at most 0.887
(benchmarks/audit_duplicates.py), hence `PIXEL_DUPLICATE`. Features of a random or barely
trained backbone cannot tell a copy from a look-alike; these do, whatever the backbone.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from ..pixels import BadImage, load_rgb

SIDE = 16
CROPS = (1.0, 0.967, 0.933, 0.9)
PIXEL_DUPLICATE = 0.92
WIDTH = SIDE * SIDE * 3


def _thumb(img: Image.Image, crop: float, mirror: bool) -> np.ndarray:
    w, h = img.size
    dx, dy = w * (1 - crop) / 2, h * (1 - crop) / 2
    t = img.resize((SIDE, SIDE), Image.BOX, box=(dx, dy, w - dx, h - dy))
    if mirror:
        t = ImageOps.mirror(t)
    a = np.asarray(t, np.float32).reshape(-1, 3)
    a = (a - a.mean(0)).ravel()
    return a / max(float(np.linalg.norm(a)), 1e-6)


def fingerprint(path) -> tuple[np.ndarray, np.ndarray]:
    """(the fingerprint (WIDTH,), its variants (2 * len(CROPS), WIDTH)) of one image file;
    raises `fewclip.pixels.BadImage` for a file that cannot be read."""
    img = load_rgb(path, min_side=SIDE * 8)  # a large JPEG decodes at a reduced scale
    variants = np.stack([_thumb(img, c, m) for c in CROPS for m in (False, True)])
    return variants[0], variants


def fingerprints(paths) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fingerprints (n, WIDTH) and variants (n, 2 * len(CROPS), WIDTH) of `paths`, and
    per path "" or why it could not be read (its rows are then zeros: similar to nothing)."""
    n = len(paths)
    full = np.zeros((n, WIDTH), np.float32)
    var = np.zeros((n, 2 * len(CROPS), WIDTH), np.float32)
    errors = [""] * n
    for i, path in enumerate(paths):
        try:
            full[i], var[i] = fingerprint(path)
        except BadImage as e:
            errors[i] = str(e)
    return full, var, errors


def pixel_similarity(full_q, var_q, full_r, var_r) -> np.ndarray:
    """(len(q), len(r)) pixel similarities: the best of q's fingerprint against r's variants
    and of r's fingerprint against q's variants."""
    nq, nr, v = len(full_q), len(full_r), var_r.shape[1]
    a = (full_q @ var_r.reshape(nr * v, -1).T).reshape(nq, nr, v).max(2)
    b = (full_r @ var_q.reshape(nq * v, -1).T).reshape(nr, nq, v).max(2)
    return np.maximum(a, b.T)
