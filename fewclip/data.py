"""Image discovery: the class folders, the image files in them, and the junk skipped (decoding
is `fewclip.pixels`).

A data folder holds one sub-folder per class (`<root>/<class>/...`, nested folders allowed).
Discovery skips junk and says so: hidden and system entries (names starting with `.` or `@`,
such as the `@eaDir` folders a NAS leaves, `__MACOSX`, `Thumbs.db`), files whose extension is
not an image's, and files whose header is not a readable image. Junk is counted; every other
skipped file is named with its reason.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from . import UserError
from .pixels import failure_reason, open_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
JUNK_REASONS = frozenset({"hidden or system entry"})


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

    def describe(self) -> str:
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


def check_header(path: str | Path) -> str | None:
    """None if `path` opens as an image (header only, cheap), else the reason it does not."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with open_image(path) as img:
            img.size  # noqa: B018 - parses the header
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return failure_reason(e, "unreadable")
    return None


@dataclass
class Found:
    """What `find_images` found: the image files, once each, and the inputs that are missing."""

    paths: list[str]
    missing: list[str]


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
            if key in seen:
                repeated += 1
            else:
                seen.add(key)
                found.append(f)
    if repeated:
        warn(f"{repeated} file(s) named more than once (or also inside a named folder): each classified once")
    return Found(found, missing)


def scan_folder(root: str | Path, check_images: bool = True) -> ImageFolder:
    """Find `<root>/<class>/**/<image>` files, in a stable (sorted) order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found")
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


