"""Image discovery and robust decoding.

A data folder holds one sub-folder per class (`<root>/<class>/...`, nested folders allowed).
Discovery skips junk and says so: hidden and system entries (names starting with `.` or `@`,
such as the `@eaDir` folders a NAS leaves, `__MACOSX`, `Thumbs.db`), files whose extension is
not an image's, and files whose header is not a readable image. Junk is counted; every other
skipped file is named with its reason.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
JUNK_REASONS = frozenset({"hidden or system entry"})


class BadImage(Exception):
    """An image file that cannot be decoded; the message says why."""


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class ImageFolder:
    """What discovery found under `root`: (path, class) samples, class folders, skipped files."""

    root: Path
    samples: list[tuple[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(label for _, label in self.samples)

    def summary(self) -> str:
        """One line of totals, then one line per non-junk skipped file."""
        line = f"{self.root}: {_count(len(self.samples), 'image')} in {_count(len(self.classes), 'class')}"
        if self.skipped:
            reasons = Counter(s.reason for s in self.skipped)
            line += f"; skipped {_count(len(self.skipped), 'file')} (" + ", ".join(
                f"{n} {reason}" for reason, n in sorted(reasons.items())) + ")"
        return "\n".join([line] + [f"  skipped {s.path}: {s.reason}" for s in self.skipped
                                    if s.reason not in JUNK_REASONS])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"


def is_junk(name: str) -> bool:
    return name.startswith((".", "@")) or name in SYSTEM_NAMES


def name_reason(name: str) -> str | None:
    """Why a file called `name` is not taken as an image before opening it (a hidden or
    system entry, or not an image's extension), or None."""
    if is_junk(name):
        return "hidden or system entry"
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file (extension)"
    return None


def _open(path: str | Path) -> Image.Image:
    """`Image.open` (the header only) that refuses decompression bombs: PIL raises above
    twice `MAX_IMAGE_PIXELS` and only warns between once and twice; both are refused here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _reason(e: Exception, verb: str) -> str:
    """The one-line reason for a failure of `_open` or of decoding."""
    if isinstance(e, UnidentifiedImageError):
        return "not an image (unrecognised file content)"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"refused (decompression bomb): {e}"
    return f"{verb}: {e}"


def cannot_read(e: OSError) -> str:
    """The reason given for a file that cannot be read at all (gone, a folder, no permission),
    by every embedding path alike."""
    return f"cannot read: {e.strerror or e}"


def check_header(path: str | Path) -> str | None:
    """None if `path` opens as an image (header only, cheap), else the reason it does not."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with _open(path) as img:
            img.size  # noqa: B018 - parses the header
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return _reason(e, "unreadable")
    return None


@dataclass
class Found:
    """What `find_images` found: the image files, once each, and the inputs that are missing."""

    paths: list[str]
    missing: list[str]
    repeated: int  # files named again (twice on the command line, or also inside a named folder)


def find_images(inputs: list[str], warn) -> Found:
    """Image files named in `inputs` or found (recursively, sorted, by extension, junk
    skipped) in the folders named there, for classifying photos without class folders; a
    file reached twice counts once. `warn(message)` hears of empty folders, missing paths
    and repeats."""
    found, seen, missing, repeated = [], set(), [], 0
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = [str(p) for p in sorted(path.rglob("*"))
                     if p.is_file() and name_reason(p.name) is None
                     and not any(is_junk(part) for part in p.relative_to(path).parent.parts)]
            if not files:
                warn(f"{path}: no image files in this folder")
        elif path.is_file():
            files = [str(path)]
        else:
            warn(f"{path}: no such file or folder")
            missing.append(item)
            files = []
        for f in files:
            key = os.path.abspath(f)
            repeated += key in seen
            if key not in seen:
                seen.add(key)
                found.append(f)
    if repeated:
        warn(f"{repeated} file(s) named more than once (or also inside a named folder): each classified once")
    return Found(found, missing, repeated)


def scan_folder(root: str | Path, check_images: bool = True) -> ImageFolder:
    """Find `<root>/<class>/**/<image>` files, in a stable (sorted) order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; obtain the data (README: `make data`) "
                        "or point params.yaml `data` at your folders")
    found = ImageFolder(root=root)
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            found.skipped.append(Skipped(str(entry), "hidden or system entry" if is_junk(entry.name)
                                         else "file outside a class folder"))
            continue
        if is_junk(entry.name):
            found.skipped += [Skipped(str(p), "hidden or system entry") for p in _all_files(entry)]
            continue
        found.classes.append(entry.name)
        for dirpath, dirnames, filenames in os.walk(entry, followlinks=False):
            dirnames.sort()
            for d in [d for d in dirnames if is_junk(d)]:
                dirnames.remove(d)
                found.skipped += [Skipped(str(p), "hidden or system entry")
                                  for p in _all_files(Path(dirpath) / d)]
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                reason = name_reason(name) or (check_header(path) if check_images else None)
                if reason:
                    found.skipped.append(Skipped(path, reason))
                else:
                    found.samples.append((path, entry.name))
    return found


def _all_files(folder: Path) -> list[Path]:
    return sorted(Path(d) / f for d, _, files in os.walk(folder, followlinks=False) for f in files)


def load_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode an image to 8-bit RGB, the way a photo is meant to be seen: EXIF orientation
    applied, transparency composited onto white, 16- and 32-bit images rescaled to 8 bits
    (PIL's own conversion would clip them), CMYK, palette and grey converted. Images over
    PIL's `MAX_IMAGE_PIXELS` are refused before decoding. With `min_side`, a large JPEG is
    decoded at a reduced scale (1/2 to 1/8, in the decoder) keeping both sides >= `min_side`,
    so a 10,000-pixel photo never exists at full size. Raises BadImage with the reason."""
    try:
        with _open(path) as img:
            if min_side and img.format == "JPEG":
                img.draft("RGB", (min_side, min_side))
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(_reason(e, "cannot decode")) from None


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
