"""PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from .pixels import BadImage, load_rgb  # noqa: E402


# One colour per head, the same in the PNGs and in the interactive shots curve
# (.dvc/plots/shots_curve.json names the same domain and range; a test checks): matplotlib's
# and Vega's category10, in the order of the heads, zero-shot black.
HEAD_COLORS = {"mlp": "#1f77b4", "linear": "#ff7f0e", "ncm": "#2ca02c", "tip-adapter": "#d62728",
               "tip-adapter-f": "#9467bd", "gda": "#8c564b", "zs-linear": "#e377c2", "zero-shot": "#000000"}
# Captions are drawn with matplotlib's bundled DejaVu Sans, which covers accented and most
# non-Latin letters of class names (Pillow's default font does not).
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


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


SHEET_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


def sheet_format(path: str | Path) -> str:
    """The image format a contact sheet at `path` is written in, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in SHEET_FORMATS:
        raise ValueError(f"{path}: a contact sheet is a {', '.join(SHEET_FORMATS)} file")
    return SHEET_FORMATS[suffix]


def contact_sheet(items: list[tuple[str, str]], path: str | Path, title: str, columns: int = 6,
                  thumb: int = 160, quality: int = 80) -> int:
    """A grid of photos, each captioned (e.g. "true bus / predicted car 87.1%"), saved in the
    format its extension names (`sheet_format`): a JPEG sheet of 30 photos stays around
    100-300 KB. `items` is [(image path, caption)];
    a photo that can no longer be read is drawn as a grey tile that says so. Returns the
    number of photos drawn. With no items, the sheet says `title` and that there is nothing
    to show. Drawn with Pillow alone (a tenth of the time matplotlib takes for 30 photos)."""
    fmt = sheet_format(path)
    font = ImageFont.truetype(str(FONT), 11)
    line = 15  # pixels per caption line
    cols = min(columns, max(1, len(items)))
    rows = max(1, -(-len(items) // columns))
    caption_lines = max([c.count("\n") + 1 for _, c in items] + [1])
    pad, cell_w, cell_h = 6, thumb + 12, thumb + 8 + caption_lines * line
    width = max(cols * cell_w + 2 * pad, 360)
    heading = _wrap_pixels(title, font, width - 2 * pad)
    top = pad + len(heading) * line + pad
    sheet = Image.new("RGB", (width, top + rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, text in enumerate(heading):
        draw.text((width // 2, pad + i * line), text, fill="black", font=font, anchor="ma")
    if not items:
        draw.text((width // 2, top + cell_h // 2), "No images to show.", fill="black", font=font, anchor="mm")
    for n, (image, caption) in enumerate(items):
        x0, y0 = pad + (n % columns) * cell_w, top + (n // columns) * cell_h
        try:
            img = load_rgb(image, min_side=thumb)
            img.thumbnail((thumb, thumb))
            sheet.paste(img, (x0 + (cell_w - img.width) // 2, y0 + (thumb - img.height) // 2))
        except BadImage as e:
            draw.rectangle((x0 + 6, y0, x0 + 6 + thumb, y0 + thumb), fill=(200, 200, 200))
            draw.multiline_text((x0 + cell_w // 2, y0 + thumb // 2), "cannot read:\n" + str(e)[:24],
                                fill="black", font=font, anchor="mm", align="center")
        for j, text in enumerate(caption.split("\n")):
            draw.text((x0 + cell_w // 2, y0 + thumb + 4 + j * line), _fit_pixels(text, font, cell_w - 4),
                      fill="black", font=font, anchor="ma")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, fmt, **({"quality": quality, "optimize": True} if fmt != "PNG" else {"optimize": True}))
    return len(items)


def _wrap_pixels(text: str, font, width: int) -> list[str]:
    """`text` in lines no wider than `width` pixels, broken between words."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def _fit_pixels(text: str, font, width: int) -> str:
    """`text`, shortened with an ellipsis to at most `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


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
