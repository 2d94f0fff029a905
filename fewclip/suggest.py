"""Which photos to label next: rank unlabelled photos by how much labelling each would help.

    python -m fewclip.suggest POOL_DIR [--n 20] [--sort-into DIR] [--out suggest/next.csv]

The rule is `label_next`, a function of features only (the benchmarks and tests call it):

1. Every pool photo gets the class the current labels predict: the class means of the
   labelled photos, each fused with its class's text feature where there are text features
   (moved across the modality gap, as one more shot), refined on the pool itself by a few
   k-means steps started there (a labelled photo weighs as two pool photos): the pool's
   own structure sharpens the means. With no label and no text, the classes are the pool's
   own k-means clusters.
2. Balance first (PCB, CVPR 2024): each class predicted for some pool photo gets one pick per
   round, the classes with the fewest labels first.
3. Within a class, typical and new (TypiClust, ICML 2022): the photo with the highest mean
   similarity to its nearest neighbours among the photos predicted as that class, less its
   highest similarity to what that class already has (labelled or picked in this round)
   times (labels - 1) / labels: a class with one label gets its most typical photo, one with
   more gets a typical photo of a part its labels do not cover yet.
4. Never a near-duplicate (cosine >= `duplicate`) of a labelled photo; a near-duplicate of
   an earlier pick only after every other photo.

Measured on real CLIP features (benchmarks/label_next.py; figures in benchmarks/README.md).
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np

from .audit.duplicates import NEAR_DUPLICATE, best_match

NEIGHBOURS = 20       # typicality: mean similarity to this many nearest neighbours
REFERENCE = 2000      # ... among at most this many photos of the class (a random subset)
REFINE_STEPS = 5      # k-means steps on the pool (soft, nearly hard)
REFINE_SCALE = 100.0  # their softmax temperature (cosine logits): nearly hard assignments
LABEL_WEIGHT = 2.0    # a labelled photo's weight against a pool photo's in those steps


def _normalise(A: np.ndarray) -> np.ndarray:
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)


def kmeans(X: np.ndarray, k: int, seed: int = 0, steps: int = 20) -> np.ndarray:
    """Spherical k-means (k-means++ start): the cluster of each row."""
    rng = np.random.default_rng(seed)
    centres = [X[rng.integers(len(X))]]
    best = X @ centres[0]
    for _ in range(1, k):
        d = np.clip(1 - best, 0, None)
        p = d / d.sum() if d.sum() > 0 else None
        centres.append(X[rng.choice(len(X), p=p)])
        best = np.maximum(best, X @ centres[-1])
    C = np.stack(centres)
    for _ in range(steps):
        assign = (X @ C.T).argmax(1)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, X)
        empty = np.linalg.norm(sums, axis=1) == 0
        C = np.where(empty[:, None], C, _normalise(sums))
    return (X @ C.T).argmax(1)


def predicted_classes(X_pool, X_labelled, y_labelled, n_classes, text_features=None, refine: bool = True):
    """(the predicted class of each pool photo, -1 where none can be; the class prototypes)."""
    d = X_pool.shape[1]
    sums, counts = np.zeros((n_classes, d)), np.zeros(n_classes)
    np.add.at(sums, y_labelled, X_labelled)
    np.add.at(counts, y_labelled, 1)
    if text_features is not None:
        text = _normalise(np.asarray(text_features, np.float64))
        gap = (X_labelled.mean(0) - text[y_labelled].mean(0)) if len(y_labelled) else X_pool.mean(0) - text.mean(0)
        sums, counts = sums + _normalise(text + gap), counts + 1
    known = counts > 0
    if not known.any():
        return np.full(len(X_pool), -1), None
    protos = _normalise(sums / np.maximum(counts, 1)[:, None])
    if refine:
        for _ in range(REFINE_STEPS):
            logits = REFINE_SCALE * X_pool @ protos.T
            logits[:, ~known] = -np.inf
            resp = np.exp(logits - logits.max(1, keepdims=True))
            resp /= resp.sum(1, keepdims=True)
            protos = _normalise(LABEL_WEIGHT * sums + resp.T @ X_pool)
    S = X_pool @ protos.T
    S[:, ~known] = -np.inf
    return S.argmax(1), protos


def typicality(X: np.ndarray, rng, neighbours: int = NEIGHBOURS, reference: int = REFERENCE) -> np.ndarray:
    """Mean cosine of each row to its `neighbours` nearest other rows (among a random subset of
    at most `reference` rows)."""
    if len(X) < 2:
        return np.ones(len(X))
    ref = X if len(X) <= reference else X[rng.choice(len(X), reference, replace=False)]
    k = min(neighbours, len(ref) - 1)
    out = np.empty(len(X))
    for start in range(0, len(X), 4096):
        S = X[start:start + 4096] @ ref.T
        top = -np.partition(-S, k, axis=1)[:, : k + 1]  # the row itself may be among them: drop the largest
        out[start:start + len(S)] = (top.sum(1) - top.max(1)) / k if len(ref) == len(X) else top[:, :k].mean(1)
    return out


def label_next(X_pool, X_labelled, y_labelled, n: int, *, n_classes: int, text_features=None,
               logit_scale: float = 100.0, seed: int = 0, duplicate: float = NEAR_DUPLICATE) -> list[int]:
    """Indices into `X_pool` (L2-normalised features, (m, dim)), in the order to label them: `n`,
    or all the pool photos that are not near-duplicates of a labelled photo where there are
    fewer. Within the order, near-duplicates of an earlier pick come after every other photo.
    `X_labelled`, `y_labelled`: the photos labelled so far (none for a cold start);
    `text_features` (n_classes, dim): the class text features, or None; `duplicate`: the
    cosine from which two photos count as near-duplicates (`fewclip.audit.find_duplicates`
    gives one that suits the backbone); `logit_scale` is accepted for callers that hold one
    (the rule compares cosine similarities only)."""
    return rank(X_pool, X_labelled, y_labelled, n, n_classes=n_classes, text_features=text_features, seed=seed,
                duplicate=duplicate)[0]


def rank(X_pool, X_labelled, y_labelled, n: int, *, n_classes: int, text_features=None, seed: int = 0,
         duplicate: float = NEAR_DUPLICATE) -> tuple[list[int], np.ndarray]:
    """`label_next`'s picks, and the class each pool photo is predicted as in step 1 (the one
    it was balanced by; -1 before any label or text)."""
    X = np.asarray(X_pool, np.float32)
    L = np.asarray(X_labelled, np.float32).reshape(-1, X.shape[1])
    y = np.asarray(y_labelled, np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    if not len(X) or n <= 0:
        return [], np.full(len(X), -1)
    free = np.ones(len(X), bool)
    if len(L):
        _, sim = best_match(X, L)
        free &= sim < duplicate
    classes, _ = predicted_classes(X, L, y, n_classes, text_features)
    predicted = classes
    if (classes < 0).all():  # no label, no text: the pool's own clusters stand for the classes
        classes = kmeans(X, min(n, len(X)), seed)
        counts = np.zeros(classes.max() + 1)
        groups = classes.max() + 1
        own = [np.zeros((0, X.shape[1]), np.float32) for _ in range(groups)]
    else:
        groups = n_classes
        counts = np.bincount(y, minlength=n_classes).astype(float)
        own = [L[y == c] for c in range(n_classes)]
    members = {c: np.flatnonzero((classes == c) & free) for c in range(groups)}
    typical = {c: typicality(X[idx], rng) for c, idx in members.items() if len(idx)}
    picked: list[int] = []
    taken = np.zeros(len(X), bool)
    while len(picked) < n:
        # one pick per class per pass, the classes with the fewest labels first (then the larger)
        order = sorted((c for c in members if len(members[c])), key=lambda c: (counts[c], -len(members[c]), c))
        progress = False
        for c in order:
            if len(picked) >= n:
                break
            idx = members[c]
            ok = ~taken[idx]
            if picked:
                ok &= best_match(X[idx], X[picked])[1] < duplicate
            if not ok.any():
                continue
            score = typical[c].copy()
            if len(own[c]) and counts[c] > 1:  # new ground, more so the more the class has
                score -= (counts[c] - 1) / counts[c] * (X[idx] @ own[c].T).max(1)
            score[~ok] = -np.inf
            i = int(idx[int(score.argmax())])
            picked.append(i)
            taken[i] = True
            own[c] = np.vstack([own[c], X[i][None]])
            counts[c] += 1
            progress = True
        if not progress:
            break
    if len(picked) < n:  # near-duplicates of earlier picks (or unpredicted photos) last, most typical first
        typ = np.full(len(X), -np.inf)
        for c, idx in members.items():
            if len(idx):
                typ[idx] = typical[c]
        rest = np.flatnonzero(free & ~taken)
        picked += [int(i) for i in rest[np.argsort(-typ[rest], kind="stable")][: n - len(picked)]]
    return picked, predicted


def reasons(classes_of, proba, labelled_counts, names) -> list[str]:
    """Why each pick was chosen, in words, for picks in the order they were made: the coverage
    of the class it was balanced by (`classes_of`, names `names`) when it was picked, and
    whether the classifier is unsure of it (its top two probabilities, `proba`, within 0.2)."""
    counts = np.array(labelled_counts, float)
    median = float(np.median(counts)) if len(counts) else 0.0
    out = []
    for c, p in zip(classes_of, proba):
        c = int(c)
        top = np.sort(p)[::-1]
        why = (f"under-covered class {names[c]} ({int(counts[c])} labelled)" if counts[c] < median
               else f"typical of {names[c]} ({int(counts[c])} labelled)")
        if len(top) > 1 and top[0] - top[1] < 0.2:
            why += f"; uncertain (margin {top[0] - top[1]:.2f})"
        out.append(why)
        counts[c] += 1
    return out


def copy_into(paths: list[str], labels: list[str], folder) -> tuple[int, int]:
    """Copy each photo into `folder/<label>/` (never moved, never overwriting: a different file
    of the same name gets a numbered name); (copied, already there)."""
    copied = same = 0
    for path, label in zip(paths, labels):
        dest_dir = Path(folder) / label
        dest_dir.mkdir(parents=True, exist_ok=True)
        src, dest = Path(path), dest_dir / Path(path).name
        n = 1
        while dest.exists() and not filecmp.cmp(src, dest, shallow=False):
            dest = dest_dir / f"{src.stem}-{n}{src.suffix}"
            n += 1
        if dest.exists():
            same += 1
        else:
            shutil.copy2(src, dest)
            copied += 1
    return copied, same


if __name__ == "__main__":
    from .pipeline.runner import run
    from .suggest_cli import FLAGS, main

    run(main, FLAGS)
