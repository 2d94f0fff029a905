"""Training the experiment's classifier on feature sets: the train stage's work, without files.

`train_classifier` fits the few-shot head (mode "few") or sets up zero-shot CLIP (mode
"zero") and reports each epoch to `on_epoch`: epoch 0 is zero-shot CLIP (the text prior,
before any training photo is used), then every epoch of a head that trains in epochs, or
the one step of a closed-form head.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .features import FeatureSet
from .heads import Head, ZeroShotHead, fit_imports, make_head, one_thread
from .metrics import accuracy, epoch_row, figures


def split_figures(head: Head, train: FeatureSet, val: FeatureSet) -> dict:
    """`epoch_row` of a fitted head on the training and validation features (the
    cross-entropy of its probabilities); a split without images is left out."""
    pairs = [figures(np.log(np.clip(head.predict_proba(fs.features), 1e-12, None)), fs.labels)
             if len(fs.labels) else None for fs in (train, val)]
    return epoch_row(*pairs)


def train_classifier(mode: str, head_name: str, head_params: dict, seed: int, train: FeatureSet, val: FeatureSet,
                     text_features: np.ndarray, logit_scale: float,
                     on_epoch: Callable[[int, dict], None] = lambda epoch, row: None) -> tuple[Head, dict]:
    """(the fitted head, what it did: `best_epoch`, `epochs_run`, `chosen`, `kept_zero_shot`,
    `val_acc` where there is something to say). One thread, as the shots stage fits the same
    heads: the same numbers from both."""
    with one_thread(fit_imports([head_name])):
        head = ZeroShotHead(text_features, logit_scale)
        on_epoch(0, split_figures(head, train, val))
        if mode == "few":
            head = make_head(head_name, head_params, text_features=text_features, logit_scale=logit_scale, seed=seed)
            head.fit(train.features, train.labels, val.features, val.labels, n_classes=len(train.classes),
                     on_epoch=on_epoch)
            if not (head.trains_in_epochs and head.history_):  # a closed-form head: its one step
                on_epoch(1, split_figures(head, train, val))
    info: dict = {"kept_zero_shot": head.kept_zero_shot()}
    if getattr(head, "best_epoch_", None):
        info["best_epoch"] = head.best_epoch_
    if head.trains_in_epochs and head.history_:
        info["epochs_run"] = len(head.history_)
    if head.chosen():
        info["chosen"] = head.chosen()
    if len(val.labels):
        info["val_acc"] = accuracy(head.predict_proba(val.features), val.labels)
    return head, info
