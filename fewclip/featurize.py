"""Turning the split stage's file lists into feature sets: the embed stage's work, without files.

`embed_split` embeds one list of (path, label) rows through the feature cache and returns
its feature set (the images that decoded), the rows it skipped with the reason, and the
cache's and decoder's counts; `embed_text` gives the class text features. A class of the
training list none of whose images decodes cannot be trained: that stops the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import UserError
from .embedding import CacheStats, embed_cached
from .features import FeatureSet, TextFeatures
from .prompts import cached_logit_scale, text_classifier


@dataclass
class Embedded:
    features: FeatureSet
    skipped: list  # [path, reason] of every row that could not be decoded
    stats: CacheStats
    seconds: float


def embed_split(backbone, rows: list[tuple[str, str]], classes: list[str], cache, *, batch_size: int, workers: int,
                decode: str, engine: str, address, desc: str, dim: int | None = None, trained: bool = False,
                skipped=lambda path, reason: None) -> Embedded:
    """The features of `rows` (labels among `classes`); `skipped(path, reason)` is told of each
    row that could not be decoded, as soon as it is known. `trained`: the training list, where
    every class must keep an image."""
    index = {c: i for i, c in enumerate(classes)}
    start, stats = time.perf_counter(), CacheStats()
    feats, errors = embed_cached(backbone, [path for path, _ in rows], cache, batch_size, workers, desc=desc,
                                 stats=stats, dim=dim, decode=decode, engine=engine, address=address)
    ok = [not err for err in errors]
    for (path, _), err in zip(rows, errors):
        if err:
            skipped(path, err)
    kept = [r for r, keep in zip(rows, ok) if keep]
    lost = sorted(set(classes) - {label for _, label in kept}) if trained else []
    if lost:
        raise UserError(f"no training image of class(es) {lost} could be decoded; these classes cannot be trained")
    fs = FeatureSet(features=feats[ok], labels=np.array([index[label] for _, label in kept], dtype=np.int64),
                    classes=list(classes), paths=[path for path, _ in kept], model=backbone.name,
                    model_sha256=backbone.sha256)
    return Embedded(fs, [[path, err] for (path, _), err in zip(rows, errors) if err], stats,
                    time.perf_counter() - start)


def embed_text(backbone, classes: list[str], templates: list[str], names: dict, cache) -> TextFeatures:
    """The prompt-ensemble text features of `classes` (trained first, then novel)."""
    text = text_classifier(backbone, classes, templates, names, cache=cache)
    return TextFeatures(text, list(classes), list(templates), cached_logit_scale(backbone, cache), backbone.name,
                        backbone.sha256, backbone.precision)
