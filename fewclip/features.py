"""The feature files: their one writer and one reader each (embedding: `fewclip.embedding`).

Format (documented in the README): one `.npz` file per split, readable with numpy alone
(`np.load(path)`, no pickle), written by `save_features`, read by `load_features`:
  features  float32 (n, dim), each row L2-normalised
  labels    int64 (n,), indices into `classes`
  classes   str (n_classes,), class folder names
  paths     str (n,), image file paths, as listed by the split stage
  model     str scalar, the backbone (`model` param); model_sha256: its checkpoint's SHA-256
`text.npz` (`save_text` / `load_text`) has the same keys except labels and paths: one row
per class (the trained classes, then the novel ones), plus `templates` (str),
`logit_scale` (float scalar) and `precision` (str scalar: the image encoder's arithmetic
the features were computed at, `fewclip.backbone.resolve_precision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import UserError
from .cache import atomic_write


@dataclass
class FeatureSet:
    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    model: str
    model_sha256: str


def save_npz(path: str | Path, **arrays) -> None:
    """Write atomically (`fewclip.cache.atomic_write`)."""
    with atomic_write(path) as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def save_features(path: str | Path, fs: FeatureSet) -> None:
    save_npz(path, features=fs.features.astype(np.float32), labels=fs.labels.astype(np.int64),
             classes=np.array(fs.classes, dtype=str), paths=np.array(fs.paths, dtype=str),
             model=fs.model, model_sha256=fs.model_sha256)


def _read_npz(path: str | Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found (run the embed stage: `dvc repro embed`)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_features(path: str | Path) -> FeatureSet:
    z = _read_npz(path, "feature")
    return FeatureSet(features=z["features"].astype(np.float32), labels=z["labels"].astype(np.int64),
                      classes=[str(c) for c in z["classes"]], paths=[str(p) for p in z["paths"]],
                      model=str(z["model"]), model_sha256=str(z["model_sha256"]))


@dataclass
class TextFeatures:
    """The class text features: the trained classes first, then the novel ones."""

    features: np.ndarray
    classes: list[str]
    templates: list[str]
    logit_scale: float
    model: str
    model_sha256: str
    precision: str = "fp32"  # the image features' precision (embed.precision, resolved)

    def rows_for(self, classes: list[str], path: str | Path = "text.npz") -> np.ndarray:
        """The rows of `classes`, which must be the first classes of the file in that order
        (the trained classes, as the feature files name them)."""
        if self.classes[: len(classes)] != list(classes):
            raise UserError(f"{path} does not start with the classes {classes} of the feature files; "
                            "rerun `dvc repro embed`")
        return self.features[: len(classes)]


def save_text(path: str | Path, t: TextFeatures) -> None:
    save_npz(path, features=t.features.astype(np.float32), classes=np.array(t.classes, dtype=str),
             templates=np.array(t.templates, dtype=str), logit_scale=float(t.logit_scale),
             model=t.model, model_sha256=t.model_sha256, precision=t.precision)


def load_text(path: str | Path) -> TextFeatures:
    z = _read_npz(path, "text feature")
    return TextFeatures(features=z["features"].astype(np.float32), classes=[str(c) for c in z["classes"]],
                        templates=[str(t) for t in z["templates"]], logit_scale=float(z["logit_scale"]),
                        model=str(z["model"]), model_sha256=str(z["model_sha256"]),
                        precision=str(z.get("precision", "fp32")))
