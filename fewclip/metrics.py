"""Classification metrics: accuracy and the per-epoch figures (the one place they are
computed, for the heads, the stages and the shots curve), and the evaluation's figures with
torchmetrics (imported only there: the heads' fits do without it)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EPOCH_KEYS = ("train/acc", "train/loss", "val/acc", "val/loss")  # what dvclive logs per epoch


def _tensor(x, dtype) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)


def accuracy(scores, y) -> float:
    """The share of rows (logits or probabilities, (n, classes)) whose highest score is the label."""
    return float((_tensor(scores, torch.float32).argmax(-1) == _tensor(y, torch.long)).double().mean())


def figures(logits, y) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of logits against the labels."""
    logits, y = _tensor(logits, torch.float32), _tensor(y, torch.long)
    return accuracy(logits, y), float(F.cross_entropy(logits, y))


def epoch_row(train: tuple[float, float] | None, val: tuple[float, float] | None = None) -> dict:
    """One epoch's figures under EPOCH_KEYS from (accuracy, loss) pairs; a split without
    images (None) is left out."""
    row = {}
    for split, pair in (("train", train), ("val", val)):
        if pair is not None:
            row[f"{split}/acc"], row[f"{split}/loss"] = float(pair[0]), float(pair[1])
    return row


def classification_metrics(y_true, proba, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy (mean per-class recall over the classes present in
    `y_true`), per-class accuracy (recall), the confusion counts (rows: true classes) and the
    row-normalised confusion matrix."""
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

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
