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
    _save(fig, path)


def _shots_axes(ax, summary: dict, title: str) -> None:
    for head, by_k in summary.items():
        if head == "zero-shot":
            ax.axhline(next(iter(by_k.values()))["mean"], color="black", linestyle="--", label="zero-shot")
            continue
        points = sorted((v["shots"], v["mean"], v["std"]) for v in by_k.values())
        x, y, err = zip(*points)
        ax.errorbar(x, y, yerr=err, marker="o", markersize=3, capsize=3, label=head)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_title(title)
    ax.grid(alpha=0.3)


def shots_curve_png(summary: dict, path: str | Path, title: str) -> None:
    """Test accuracy versus shots per class, one line per head (mean and standard deviation
    over seeds), zero-shot as a horizontal reference line. `summary` is
    {head: {k: {"shots", "mean", "std"}}} (`fewclip.shots.summarize`)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    _shots_axes(ax, summary, title)
    ax.set_xlabel("training shots per class (mean; the last point is all available)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def shots_grid_png(summaries: dict, path: str | Path, title: str) -> None:
    """One `shots_curve_png` panel per data set ({name: summary}), sharing one legend."""
    n = len(summaries)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax, (name, summary) in zip(axes.flat, summaries.items()):
        _shots_axes(ax, summary, name)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("shots per class")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 8), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _save(fig, path)


def message_png(path: str | Path, text: str) -> None:
    """A figure that only says `text`: for a declared plot that has nothing to show this run."""
    fig, ax = plt.subplots(figsize=(6, 1.5), dpi=100)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
