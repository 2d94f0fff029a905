"""Contact sheets: grids of captioned photos, drawn with Pillow alone (no matplotlib, no
torch: `predict --onnx` draws them too)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .pixels import BadImage, load_rgb


def _dejavu() -> Path | None:
    """matplotlib's bundled DejaVu Sans, found without importing matplotlib; None without it."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


# Captions are drawn with matplotlib's bundled DejaVu Sans, which covers accented and most
# non-Latin letters of class names; where matplotlib is not installed (a deployment of
# `predict --onnx`), with Pillow's default font.
FONT = _dejavu()


def _font(size: int):
    return ImageFont.truetype(str(FONT), size) if FONT else ImageFont.load_default(size)


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
    font = _font(11)
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
