"""Classification metrics, computed with torchmetrics."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


def classification_metrics(y_true, proba, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall over the classes present in
    `y_true`), per-class accuracy (recall) and the row-normalised confusion matrix."""
    n = len(classes)
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    preds = torch.as_tensor(np.asarray(proba), dtype=torch.float32)
    per_class = MulticlassAccuracy(num_classes=n, average=None)(preds, target)
    present = torch.bincount(target, minlength=n) > 0
    return {
        "acc": float(MulticlassAccuracy(num_classes=n, average="micro")(preds, target)),
        "balanced_acc": float(per_class[present].mean()) if present.any() else float("nan"),
        "per_class": {c: float(per_class[i]) for i, c in enumerate(classes) if present[i]},
        "confusion": MulticlassConfusionMatrix(num_classes=n, normalize="true")(preds, target).numpy(),
        "n": int(len(target)),
    }
