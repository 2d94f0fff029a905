"""Exact and near-duplicate photos, within the training photos and between the splits.

A pair is a duplicate when any of these holds:
- the same bytes (SHA-256): `exact`;
- pixel similarity at least `pixel_threshold` (`fewclip.audit.fingerprint`: resized,
  re-encoded, lightly cropped or mirrored copies, whatever the backbone): `near`;
- feature similarity (cosine of the L2-normalised features) above the feature threshold:
  `near`. That threshold is the highest of `threshold` (NEAR_DUPLICATE); the highest
  similarity of two photos of different classes that are not pixel duplicates; and the
  similarity ten times closer than the median training photo is to its nearest neighbour
  (1 - (1 - median) / 10). With real CLIP ViT-B/32 that median is 0.88-0.90 (few-shot
  benchmarks' validation photos), so features count from about 0.99; random or barely trained
  weights put distinct photos at 0.98-0.999, and there features count only beyond that, which
  leaves copies to the pixel fingerprints.

Memory stays bounded whatever the number of photos: similarities are computed for blocks of
rows, `BLOCK` values at a time (100,000 features against themselves: benchmarks/audit.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fingerprint import PIXEL_DUPLICATE, pixel_similarity

NEAR_DUPLICATE = 0.95
BLOCK = 1 << 24  # similarities held at once: 64 MB of float32


def best_match(Q: np.ndarray, R: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `Q`, the index of its most similar row of `R` and that cosine (rows
    L2-normalised); -1 and -inf when `R` is empty."""
    idx, sim = np.full(len(Q), -1), np.full(len(Q), -np.inf, np.float32)
    if not len(Q) or not len(R):
        return idx, sim
    rows = max(1, block // len(R))
    for start in range(0, len(Q), rows):
        S = Q[start:start + rows] @ R.T
        j = S.argmax(1)
        idx[start:start + len(S)], sim[start:start + len(S)] = j, S[np.arange(len(S)), j]
    return idx, sim


@dataclass
class Photos:
    """One split's photos: features (n, dim), paths, class names, and optionally their pixel
    fingerprints and variants (`fewclip.audit.fingerprint.fingerprints`) and SHA-256 digests."""

    features: np.ndarray
    paths: list
    labels: list
    full: np.ndarray | None = None
    variants: np.ndarray | None = None
    digests: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Duplicate:
    path: str
    duplicate_of: str
    similarity: float  # the features' cosine
    kind: str   # "exact" (same bytes) or "near"
    where: str  # "train", "train-val", "train-test" or "test"


@dataclass
class _Best:
    feat_idx: np.ndarray
    feat_sim: np.ndarray
    pix_idx: np.ndarray
    pix_sim: np.ndarray
    pix_feat_sim: np.ndarray
    cross: float  # the highest feature similarity to a photo of another class (pixel duplicates aside)


def _scan(Q: Photos, R: Photos, earlier_only: bool, pixel_threshold: float, block: int) -> _Best:
    n = len(Q)
    best = _Best(np.full(n, -1), np.full(n, -np.inf), np.full(n, -1), np.full(n, -np.inf), np.full(n, -np.inf),
                 -np.inf)
    if not n or not len(R):
        return best
    pixels = Q.full is not None and R.full is not None
    code = {label: i for i, label in enumerate(sorted(set(map(str, Q.labels)) | set(map(str, R.labels))))}
    qlab, rlab = (np.array([code[str(lab)] for lab in g.labels]) for g in (Q, R))
    per_row = len(R) * (1 + (2 * R.variants.shape[1] if pixels else 0))
    rows = max(1, block // per_row)
    for start in range(0, n, rows):
        sl = slice(start, min(n, start + rows))
        # within one set only earlier rows count: those before the block's end
        ref = slice(0, sl.stop) if earlier_only else slice(0, len(R))
        S = Q.features[sl] @ R.features[ref].T
        if earlier_only:
            S[np.arange(ref.stop)[None, :] >= np.arange(sl.start, sl.stop)[:, None]] = -np.inf
        r = np.arange(len(S))
        j = S.argmax(1)
        best.feat_idx[sl], best.feat_sim[sl] = j, S[r, j]
        # distinct photos of different classes (not copies: pixels apart, features not identical)
        other = qlab[sl][:, None] != rlab[None, ref]
        if pixels:
            P = pixel_similarity(Q.full[sl], Q.variants[sl], R.full[ref], R.variants[ref])
            if earlier_only:
                P[S == -np.inf] = -np.inf
            k = P.argmax(1)
            best.pix_idx[sl], best.pix_sim[sl], best.pix_feat_sim[sl] = k, P[r, k], S[r, k]
            other &= P < pixel_threshold
        S[~other | (S >= 1 - 1e-5)] = -np.inf
        best.cross = max(best.cross, float(S.max()))
    return best


def _decide(Q: Photos, R: Photos, b: _Best, floor: float, pixel_threshold: float, where: str,
            earlier_only: bool) -> list[Duplicate]:
    first: dict = {}  # digest -> the first row of R with those bytes
    for j, d in enumerate(R.digests):
        if d is not None:
            first.setdefault(d, j)
    out = []
    for i in range(len(Q)):
        d = Q.digests[i] if Q.digests else None
        j = first.get(d, -1) if d is not None else -1
        if j >= 0 and (not earlier_only or j < i):
            out.append(Duplicate(Q.paths[i], R.paths[j], round(float(Q.features[i] @ R.features[j]), 4), "exact",
                                 where))
            continue
        if b.pix_idx[i] >= 0 and b.pix_sim[i] >= pixel_threshold:
            j, sim = b.pix_idx[i], b.pix_feat_sim[i]
        elif b.feat_idx[i] >= 0 and b.feat_sim[i] > floor:
            j, sim = b.feat_idx[i], b.feat_sim[i]
        else:
            continue
        out.append(Duplicate(Q.paths[i], R.paths[j], round(float(sim), 4), "near", where))
    return out


def _usual_neighbour(g: Photos | None, block: int, sample: int = 5000, seed: int = 0) -> float:
    """1 - (1 - m) / 10, m the median similarity of a photo of `g` to its nearest other photo
    (over a random `sample` of the photos, against all of them)."""
    if g is None or len(g) < 2:
        return -np.inf
    X = g.features
    rows = np.arange(len(X))
    if len(X) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), sample, replace=False))
    step = max(1, block // len(X))
    nearest = np.empty(len(rows))
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        S = X[part] @ X.T
        S[np.arange(len(part)), part] = -np.inf
        nearest[start:start + len(part)] = S.max(1)
    return float(1 - (1 - np.median(nearest)) / 10)


def _concat(a: Photos, b: Photos) -> Photos:
    if not len(a) or not len(b):
        return a if len(a) else b
    cat = lambda x, y: None if x is None or y is None else np.concatenate([x, y])  # noqa: E731
    return Photos(np.concatenate([a.features, b.features]), a.paths + b.paths, a.labels + b.labels,
                  cat(a.full, b.full), cat(a.variants, b.variants),
                  a.digests + b.digests if a.digests and b.digests else [])


def find_duplicates(groups: dict, threshold: float = NEAR_DUPLICATE, pixel_threshold: float = PIXEL_DUPLICATE,
                    block: int = BLOCK) -> tuple[list[Duplicate], float]:
    """The duplicates among `groups` ({"train": Photos, "val": ..., "test": ...}; any may be
    missing; "test" holds every test photo, the novel classes' too), and the feature threshold
    used (see the module's docstring).

    `where`: `train` within one split of the training photos, `train-val` a validation photo
    and a training one, `train-test` a test photo and a training or validation photo (a leak:
    the head is tested on a photo it learnt from), `test` within the test photos. Each photo is
    reported once, against its most similar earlier photo (for `train-val` and `train-test`,
    against the training side), a pixel duplicate before a feature one."""
    tr, va, te = (groups.get(k) for k in ("train", "val", "test"))
    seen = _concat(tr, va) if tr is not None and va is not None else (tr if tr is not None else va)
    pairs = []  # (query, reference, where, earlier_only)
    for split, g in (("train", tr), ("val", va), ("test", te)):
        if g is not None and len(g):
            pairs.append((g, g, "test" if split == "test" else "train", True))
    if va is not None and tr is not None and len(va) and len(tr):
        pairs.append((va, tr, "train-val", False))
    if te is not None and seen is not None and len(te) and len(seen):
        pairs.append((te, seen, "train-test", False))
    scans = [_scan(q, r, earlier, pixel_threshold, block) for q, r, _, earlier in pairs]
    floor = max([threshold, _usual_neighbour(seen, block)] + [b.cross for b in scans])
    found = []
    for (q, r, where, earlier), b in zip(pairs, scans):
        found += _decide(q, r, b, floor, pixel_threshold, where, earlier)
    return found, floor
