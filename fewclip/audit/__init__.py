"""Know your data: suspect labels, duplicates and leaks, outliers (the audit stage's work,
without files).

`audit` takes the embed stage's feature sets and a head factory and returns what it found;
`stages/audit.py` writes it. The parts: `labels` (out-of-fold suspect labels, outliers),
`duplicates` (exact, pixel and feature near-duplicates, in bounded memory) and `fingerprint`
(the pixel fingerprints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..cache import file_sha256
from ..features import FeatureSet
from .duplicates import NEAR_DUPLICATE, Duplicate, Photos, find_duplicates
from .fingerprint import PIXEL_DUPLICATE, fingerprints
from .labels import MIN_CHECKED, OUTLIER_Z, nearest_class_similarity, robust_z, suspect_labels

__all__ = ["NEAR_DUPLICATE", "OUTLIER_Z", "PIXEL_DUPLICATE", "Audit", "Duplicate", "Photos", "audit",
           "find_duplicates", "photos", "suspect_labels"]


@dataclass
class Audit:
    """What `audit` found. `suspects`: rows {path, label, suggested, score} of the checked
    training photos, most suspect first (score > 0: the head prefers `suggested`), then the
    unchecked classes' photos without a score; `duplicates`: `Duplicate`s; `outliers`: rows
    {path, split, label, nearest_class, similarity, z}, farthest first; `metrics`: the counts."""

    suspects: list
    duplicates: list
    outliers: list
    metrics: dict
    unchecked: list
    folds: int
    feature_threshold: float
    lines: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def photos(features: np.ndarray, paths: list, labels: list, pixels: bool = True,
           digest=file_sha256) -> tuple[Photos, list]:
    """`Photos` for `find_duplicates`: the features, paths and class names of some photos, with
    their SHA-256 digests (None for a file that cannot be read) and, with `pixels`, their pixel
    fingerprints; and the [path, reason] of each photo whose fingerprint could not be made."""
    full = var = None
    unreadable = []
    if pixels:
        full, var, errors = fingerprints(paths)
        unreadable = [(p, e) for p, e in zip(paths, errors) if e]
    digests = []
    for p in paths:
        try:
            digests.append(digest(p))
        except OSError:
            digests.append(None)
    return Photos(features, list(paths), list(labels), full, var, digests), unreadable


def _outliers(paths, splits, labels, sim, near, z, outlier_z, classes) -> list[dict]:
    return [{"path": paths[i], "split": splits[i], "label": classes[labels[i]], "nearest_class": classes[near[i]],
             "similarity": round(float(sim[i]), 4), "z": round(float(z[i]), 2)} for i in np.flatnonzero(z < -outlier_z)]


def audit(train: FeatureSet, val: FeatureSet, test: FeatureSet, novel: FeatureSet, make_head: Callable, *,
          folds: int = 10, seed: int = 0, threshold: float = NEAR_DUPLICATE, pixel_threshold: float = PIXEL_DUPLICATE,
          outlier_z: float = OUTLIER_Z, pixels: bool = True, digest=file_sha256) -> Audit:
    """Audit the training photos (`train` and `val`, the training folders) and the test photos
    (`test`, and `novel`: the novel classes' test photos). `make_head(settings)` builds the
    head (with `settings` over its own) whose out-of-fold predictions rank the suspect labels;
    `pixels`: also compare pixel fingerprints (reads every photo once more)."""
    classes = list(train.classes)
    X = np.concatenate([train.features, val.features])
    y = np.concatenate([train.labels, val.labels])
    paths = train.paths + val.paths
    s = suspect_labels(make_head, X, y, len(classes), folds, seed)
    suspects = [{"path": paths[i], "label": classes[y[i]], "suggested": classes[s.suggested[i]],
                 "score": round(float(s.score[i]), 4)} for i in s.order]
    suspects += [{"path": paths[i], "label": classes[y[i]], "suggested": "", "score": ""}
                 for i in np.flatnonzero(np.isnan(s.score))]
    unchecked = [classes[c] for c in s.unchecked]

    unreadable: list = []
    test_all = FeatureSet(np.concatenate([test.features, novel.features]) if len(novel.labels) else test.features,
                          np.concatenate([test.labels, novel.labels + len(classes)]) if len(novel.labels)
                          else test.labels, classes + list(novel.classes), test.paths + novel.paths,
                          test.model, test.model_sha256)
    groups = {}
    for name, fs in (("train", train), ("val", val), ("test", test_all)):
        if len(fs.labels):
            groups[name], bad = photos(fs.features, fs.paths, [fs.classes[i] for i in fs.labels], pixels, digest)
            unreadable += bad
    dups, floor = find_duplicates(groups, threshold, pixel_threshold)

    sim, near = nearest_class_similarity(X, y, len(classes))
    z = robust_z(sim, sim)
    outliers = _outliers(paths, ["train"] * len(train.paths) + ["val"] * len(val.paths), y, sim, near, z, outlier_z,
                         classes)
    if len(test.labels):
        tsim, tnear = nearest_class_similarity(X, y, len(classes), Q=test.features)
        outliers += _outliers(test.paths, ["test"] * len(test.paths), test.labels, tsim, tnear, robust_z(tsim, sim),
                              outlier_z, classes)
    outliers.sort(key=lambda r: r["z"])

    leaks = [d for d in dups if d.where == "train-test"]
    result = Audit(suspects, dups, outliers,
                   {"suspects": int((s.score > 0).sum()), "leaks": len(leaks),
                    "duplicates": len(dups) - len(leaks), "outliers": len(outliers)},
                   unchecked, s.folds, floor)
    m = result.metrics
    result.lines.append(f"{m['suspects']} of {int((~np.isnan(s.score)).sum())} training photos look like another "
                        f"class to the head out of fold ({s.folds} folds)")
    if unchecked:
        result.warnings.append(f"class(es) {unchecked} have fewer than {MIN_CHECKED} training photos: their labels "
                               "are not checked")
    exact = [d for d in leaks if d.kind == "exact"]
    if exact:
        result.warnings.append(f"{len(exact)} test photo(s) are exact copies of training photos, e.g. {exact[0].path} "
                               f"= {exact[0].duplicate_of}: evaluate also reports test accuracy without them")
    if not len(test_all.labels):
        result.lines.append("no test photos: no leak check")
    else:
        result.lines.append(f"{len(leaks)} test photo(s) duplicate a training photo ({len(exact)} exact), "
                            f"{m['duplicates']} other duplicate(s); feature threshold {floor:.4f}, pixel "
                            f"{pixel_threshold}")
    result.lines.append(f"{m['outliers']} photo(s) far from every class (robust z below -{outlier_z:g})")
    if unreadable:
        result.warnings.append(f"{len(unreadable)} photo(s) could not be read for their pixel fingerprint, e.g. "
                               f"{unreadable[0][0]} ({unreadable[0][1]}): compared on features only")
    return result
