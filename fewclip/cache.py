"""The per-image feature cache: features are computed once per backbone, pixel code and
image content.

Layout under the `embed.feature_cache` directory:

    <root>/<backbone sha256[:16]>-<precision>-<pixels[:12]>/<content sha256[:2]>/<content sha256>.npy

The key is the SHA-256 of the image file's bytes, so a renamed or moved file is found again
and an edited one is embedded anew. The folder says what else decides a feature: the
checkpoint's SHA-256 (not its name), the image encoder's precision (`Backbone.precision_key`:
fp32, bf16 and fp16 give slightly different features), and `pixels_identity`: the source of the modules that
turn a file into the backbone's input (the backbone family's module among them: its
preprocessing), the versions of the libraries they decode and resize with, and the decode
route (CPU or GPU). An edit to that code, a library upgrade or another route embeds into a
fresh folder by itself; nothing needs a version bump. Each entry is
written to a temporary file in the same folder and renamed into place (`os.replace`, atomic
on POSIX and Windows), so a process killed at any moment leaves either a whole entry or
none; stray temporary files are ignored and removed by `prune_temp`. The cache is safe to
delete at any time, whole or a folder at a time (`touch` marks a folder used). Class text
features (the prompt ensemble of each class) and the backbone's logit scale are kept in the
same folder, keyed by `text_key` of the exact prompt texts, `fewclip.prompts`'s code and the
backbone's tokenizer, so an unchanged class is not encoded again either.

`FitCache` keeps the shots curve's fits in the same layout (`shots.fit_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMP_PREFIX = ".tmp-"
# What turns an image file into the backbone's input: decoding (pixels), the CPU and GPU paths
# and their preprocessing (decode), which file takes which path (routing), and the libraries
# they decode, convert and resize with (a backbone family adds its own: `Backbone.libraries`).
PIXEL_MODULES = ("pixels.py", "decode.py", "routing.py")
PIXEL_LIBRARIES = ("pillow", "numpy", "torch", "torchvision")


def code_identity(modules, libraries, *extra) -> str:
    """SHA-256 of the source of `modules` (file names in this package), the installed versions
    of `libraries` (distribution names) and `extra` values: what a cached result was computed
    with."""
    from importlib import metadata

    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes() + b"\0")
    for lib in libraries:
        try:
            version = metadata.version(lib)
        except metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{lib}=={version}\0".encode())
    h.update(json.dumps(list(extra), sort_keys=True).encode())
    return h.hexdigest()


def pixels_identity(route: str, family: str, libraries=()) -> str:
    """The identity of the way files become the features of a backbone of `family` (its module
    holds the preprocessing's constants, `backbone/base.py` the encoding both families share;
    `libraries`, its `Backbone.libraries`, the code of its transform) on decode route `route`
    ("cpu" or "gpu")."""
    modules = (*PIXEL_MODULES, "backbone/base.py", f"backbone/{family}.py")
    return code_identity(modules, (*PIXEL_LIBRARIES, *libraries), "route", route)


@contextmanager
def atomic_write(path: str | Path):
    """Open a temporary file beside `path` for writing (binary); when the block ends without
    an error, flush it to disk and rename it to `path` in one step, else remove it. A reader
    (or a process killed meanwhile) never sees a partly written `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class _KeyedFiles:
    """One file per key under `dir`: `<dir>/<key[:2]>/<key><suffix>`, each written atomically
    (`atomic_write`); temporary files of a killed run are ignored and removed by `prune_temp`."""

    dir: Path
    suffix = ""

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}{self.suffix}"

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob(f"*/*{self.suffix}") if not _.name.startswith(TEMP_PREFIX))

    def prune_temp(self) -> int:
        """Remove temporary files left by a killed run; returns how many."""
        stale = list(self.dir.glob(f"*/{TEMP_PREFIX}*"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


class FeatureCache(_KeyedFiles):
    """Image features keyed by content hash, for one backbone checkpoint, precision and pixel
    path (`pixels_identity`)."""

    suffix = ".npy"

    def __init__(self, root: str | Path, model_sha256: str, precision: str, pixels: str):
        self.dir = Path(root).expanduser() / f"{model_sha256[:16]}-{precision}-{pixels[:12]}"

    def touch(self) -> None:
        """Mark the folder used now (its modification time), so that folders no run uses any
        more can be found and deleted by age."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.utime(self.dir)

    def get(self, key: str) -> np.ndarray | None:
        """The cached feature for content hash `key`, or None (also for an unreadable entry)."""
        try:
            return np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, feature: np.ndarray) -> None:
        with atomic_write(self._path(key)) as f:
            np.save(f, np.asarray(feature, dtype=np.float32), allow_pickle=False)


class FitCache(_KeyedFiles):
    """The shots curve's rows (test accuracy and the fit's seconds), keyed by everything a fit
    depends on (`fewclip.shots`): `shots.fit_cache`; safe to delete."""

    suffix = ".json"

    def __init__(self, root: str | Path):
        self.dir = Path(root).expanduser()

    def get(self, key: str) -> dict | None:
        """The row of `key`, or None (also for an unreadable entry, which is fitted again)."""
        try:
            row = json.loads(self._path(key).read_text())
            return row if isinstance(row, dict) and {"acc", "seconds"} <= set(row) else None
        except (OSError, ValueError):
            return None

    def put(self, key: str, row: dict) -> None:
        with atomic_write(self._path(key)) as f:
            f.write(json.dumps({"acc": row["acc"], "seconds": row["seconds"]}).encode())


class NoCache:
    """`embed.feature_cache: null`: a cache that holds nothing, so every feature is computed."""

    dir = None

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, feature: np.ndarray) -> None:
        pass

    def prune_temp(self) -> int:
        return 0


def text_key(*parts: object) -> str:
    """A cache key for a text feature: the SHA-256 of the exact prompt texts (and anything
    else that decides it), so an edited template or class name is encoded anew."""
    return hashlib.sha256(json.dumps(["text", *parts], ensure_ascii=False).encode("utf-8")).hexdigest()
