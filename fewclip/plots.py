"""PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .sheets import FONT, contact_sheet, sheet_format  # noqa: E402, F401  (contact sheets: Pillow alone)


# One colour per head, the same in the PNGs and in the interactive shots curve
# (.dvc/plots/shots_curve.json names the same domain and range; a test checks): matplotlib's
# and Vega's category10, in the order of the heads, zero-shot black.
HEAD_COLORS = {"mlp": "#1f77b4", "linear": "#ff7f0e", "ncm": "#2ca02c", "tip-adapter": "#d62728",
               "tip-adapter-f": "#9467bd", "gda": "#8c564b", "zs-linear": "#e377c2", "zero-shot": "#000000"}


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
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(_wrap(title + " (each row, a true class, sums to 1)", 12 + 5 * n), fontsize=10)
    for i in range(n):
        for j in range(n):
            if cm[i, j] >= 0.005:
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > 0.5 else "black")
    fig.tight_layout()
    _save(fig, path)


def _shots_axes(ax, summary: dict, title: str) -> None:
    """One colour per head (HEAD_COLORS); shots per class on a log2 axis with whole-number ticks; each
    head's "all" point (the split stage's whole training set) drawn at its mean shots and
    labelled once; zero-shot, which uses no shots, a dashed horizontal line."""
    every = []
    for head, by_k in summary.items():
        if head == "zero-shot":
            ax.axhline(next(iter(by_k.values()))["mean"], color=HEAD_COLORS["zero-shot"], linestyle="--",
                       label="zero-shot")
            continue
        points = sorted((v["shots"], v["mean"], v["std"]) for v in by_k.values())
        x, y, err = zip(*points)
        ax.errorbar(x, y, yerr=err, marker="o", markersize=3, capsize=3, label=head, color=HEAD_COLORS.get(head))
        if "all" in by_k:
            every.append((by_k["all"]["shots"], by_k["all"]["mean"]))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=2))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if every:
        x, y = np.mean([e[0] for e in every]), max(e[1] for e in every)
        ax.annotate(f"all ({x:.1f} per class)", (x, y), textcoords="offset points", xytext=(0, 8), ha="center",
                    fontsize=8, fontweight="bold")
    ax.set_title(_wrap(title, 60))
    ax.grid(alpha=0.3)


def shots_curve_png(summary: dict, path: str | Path, title: str) -> None:
    """Test accuracy versus shots per class, one line per head (mean and standard deviation
    over seeds), zero-shot as a horizontal reference line. `summary` is
    {head: {k: {"shots", "mean", "std"}}} (`fewclip.shots.summarize`)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    _shots_axes(ax, summary, title)
    ax.set_xlabel("training shots per class (log scale; \"all\": the whole training split)")
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


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, max(20, width)))


def _save(fig, path: str | Path, **kwargs) -> None:
    """Save with every title and label inside the picture (a tight box around them all)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.15, **kwargs)
    plt.close(fig)


def confusion_records(counts: np.ndarray, classes: list[str]) -> list[dict]:
    """The data of DVC's interactive confusion matrix (`.dvc/plots/confusion_rows.json`): one
    record per (true, predicted) pair, every class on both axes even when it is never
    predicted, with the count and the share of the true class's images (rows sum to 1, as in
    `confusion_matrix_png`; a class without images has a row of zeros)."""
    counts = np.asarray(counts, dtype=np.int64)
    totals = counts.sum(1)
    return [{"actual": a, "predicted": p, "count": int(counts[i, j]),
             "rate": round(float(counts[i, j] / totals[i]) if totals[i] else 0.0, 4)}
            for i, a in enumerate(classes) for j, p in enumerate(classes)]


def gallery_count(wrong: int, limit: int) -> str:
    """How many of the mistakes a gallery of at most `limit` shows, in words."""
    if wrong <= limit:
        return "no mistakes" if wrong == 0 else "the one mistake" if wrong == 1 else f"all {wrong} mistakes"
    return f"the {limit} most confident of {wrong} mistakes"


def mistakes(y_true, proba, classes: list[str], paths: list[str], limit: int = 30,
             only=None) -> list[tuple[str, str]]:
    """The `limit` most confident mistakes as contact-sheet items [(path, caption)], the
    caption naming the true class, the predicted class and its probability. `only(true,
    predicted)`, given class indices, keeps some mistakes (e.g. those involving novel classes)."""
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    pred = proba.argmax(1)
    conf = proba[np.arange(len(pred)), pred]
    wrong = [i for i in np.flatnonzero(pred != y_true) if only is None or only(y_true[i], pred[i])]
    wrong.sort(key=lambda i: (-conf[i], paths[i]))
    return [(paths[i], f"{Path(paths[i]).name[:24]}\ntrue {classes[y_true[i]]}\n"
                       f"predicted {classes[pred[i]]} {conf[i]:.1%}") for i in wrong[:limit]]
