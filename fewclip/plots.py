"""PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def model_label(model: str) -> str:
    """A short name for a backbone in titles: a checkpoint's file name, or the CLIP name."""
    return Path(model).name if Path(model).is_file() else model


def confusion_matrix_png(cm: np.ndarray, classes: list[str], path: str | Path, title: str) -> None:
    """Row-normalised confusion matrix: rows are true classes, columns predictions."""
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n), dpi=120)
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            if cm[i, j] >= 0.005:
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.5 else "black")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def shots_curve_png(summary: dict, path: str | Path, title: str) -> None:
    """Test accuracy versus shots per class, one line per head (mean and standard deviation
    over seeds), zero-shot as a horizontal reference line."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for head, by_k in summary.items():
        if head == "zero-shot":
            ax.axhline(next(iter(by_k.values()))["mean"], color="black", linestyle="--", label="zero-shot")
            continue
        points = sorted((v["shots"], v["mean"], v["std"]) for v in by_k.values())
        x, y, err = zip(*points)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=head)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("training shots per class (mean; the last point is all available)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
