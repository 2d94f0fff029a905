"""Decoding an image file to the 8-bit RGB picture a viewer shows: the first step of the
pixels the backbone sees. The feature cache's key includes this module's source
(`fewclip.cache.PIXEL_MODULES`), so an edit here embeds every image anew."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class BadImage(Exception):
    """An image file that cannot be decoded; the message says why."""


def open_image(path: str | Path) -> Image.Image:
    """`Image.open` (the header only) that refuses decompression bombs: PIL raises above
    twice `MAX_IMAGE_PIXELS` and only warns between once and twice; both are refused here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def failure_reason(e: Exception, verb: str) -> str:
    """The one-line reason for a failure of `open_image` or of decoding."""
    if isinstance(e, UnidentifiedImageError):
        return "not an image (unrecognised file content)"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"refused (decompression bomb): {e}"
    return f"{verb}: {e}"


def cannot_read(e: OSError) -> str:
    """The reason given for a file that cannot be read at all (gone, a folder, no permission),
    by every embedding path alike."""
    return f"cannot read: {e.strerror or e}"


def load_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode an image to 8-bit RGB, the way a photo is meant to be seen: EXIF orientation
    applied, transparency composited onto white, 16- and 32-bit images rescaled to 8 bits
    (PIL's own conversion would clip them), CMYK, palette and grey converted. Images over
    PIL's `MAX_IMAGE_PIXELS` are refused before decoding. With `min_side`, a large JPEG is
    decoded at a reduced scale (1/2 to 1/8, in the decoder) keeping both sides >= `min_side`,
    so a 10,000-pixel photo never exists at full size. Raises BadImage with the reason."""
    try:
        with open_image(path) as img:
            if min_side and img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(failure_reason(e, "cannot decode")) from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
