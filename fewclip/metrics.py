"""Classification metrics, computed with torchmetrics."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


def classification_metrics(y_true, proba, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall over the classes present in
    `y_true`), per-class accuracy (recall), the confusion counts (rows: true classes) and the
    row-normalised confusion matrix."""
    n = len(classes)
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    preds = torch.as_tensor(np.asarray(proba), dtype=torch.float32)
    per_class = MulticlassAccuracy(num_classes=n, average=None)(preds, target)
    present = torch.bincount(target, minlength=n) > 0
    return {
        "acc": float(MulticlassAccuracy(num_classes=n, average="micro")(preds, target)),
        "balanced_acc": float(per_class[present].mean()) if present.any() else float("nan"),
        "per_class": {c: float(per_class[i]) for i, c in enumerate(classes) if present[i]},
        "counts": MulticlassConfusionMatrix(num_classes=n)(preds, target).numpy(),
        "confusion": MulticlassConfusionMatrix(num_classes=n, normalize="true")(preds, target).numpy(),
        "n": int(len(target)),
    }


def gzsl_metrics(y_true, proba, classes: list[str], n_trained: int) -> dict:
    """Generalised zero-shot metrics: one prediction over every class (trained, then novel)
    for every test image. `seen` and `novel` are the mean per-class accuracy over the trained
    and over the novel classes present in `y_true` (the usual GZSL protocol, Xian et al.,
    TPAMI 2018), `harmonic` their harmonic mean; plus plain accuracy and the confusion matrix."""
    m = classification_metrics(y_true, proba, classes)
    trained, novel = classes[:n_trained], classes[n_trained:]
    seen = [m["per_class"][c] for c in trained if c in m["per_class"]]
    unseen = [m["per_class"][c] for c in novel if c in m["per_class"]]
    s = float(np.mean(seen)) if seen else float("nan")
    u = float(np.mean(unseen)) if unseen else float("nan")
    h = float("nan") if np.isnan(s) or np.isnan(u) else 2 * s * u / (s + u) if s + u > 0 else 0.0
    return {"seen": s, "novel": u, "harmonic": h, "acc": m["acc"], "per_class": m["per_class"],
            "counts": m["counts"], "confusion": m["confusion"], "n": m["n"]}
