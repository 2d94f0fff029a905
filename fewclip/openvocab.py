"""One classifier over trained and novel classes: the few-shot head for the classes with
photos, CLIP's zero-shot text classifier for the classes known by name only.

Scores, for an image x, trained classes S (scored by the head) and novel classes U:

    log p(c | x) = log p_zs(S | x) + log p_head(c | x) - seen_bias    for c in S
    log p(c | x) = log p_zs(c | x)                                   for c in U

then renormalised. p_zs is zero-shot CLIP over all classes, so one model decides between
"one of the trained classes" and each novel class, on one scale; the head, which knows the
trained classes better, splits the trained share among them. With the zero-shot head this is
exactly zero-shot CLIP over every class. `seen_bias` is calibrated stacking (Chao et al.,
"An Empirical Study and Analysis of Generalized Zero-Shot Learning for Object Recognition in
the Wild", ECCV 2016): a constant taken off the trained classes' scores, since classifiers
that saw training photos of a class tend to claim images of novel classes too. It cannot be
chosen on the validation split, which has no novel images; it is the `gzsl.seen_bias` param.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .features import TextFeatures
from .heads import load_head, save_head


class OpenVocabulary:
    """The trained head and the novel classes in one classifier. Each estimator's
    `predict_proba` is over its own classes: this one's over `classes` (the trained classes,
    then the novel ones), the head's (`self.head.predict_proba`) over the trained classes
    alone, the first `n_trained` of `classes`."""

    def __init__(self, head, classes: list[str], text_features, logit_scale: float,
                 n_trained: int, seen_bias: float = 0.0):
        self.head, self.classes = head, list(classes)
        self.text_features = torch.as_tensor(np.asarray(text_features), dtype=torch.float32)
        self.logit_scale, self.n_trained, self.seen_bias = float(logit_scale), int(n_trained), float(seen_bias)
        if self.text_features.shape[0] != len(self.classes):
            raise ValueError(f"{len(self.classes)} classes but {self.text_features.shape[0]} text features")

    @property
    def novel(self) -> list[str]:
        return self.classes[self.n_trained:]

    def with_classes(self, names: list[str], text_features) -> "OpenVocabulary":
        """A copy that also knows the novel classes `names` (text features one row each)."""
        extra = torch.as_tensor(np.asarray(text_features), dtype=torch.float32)
        return OpenVocabulary(self.head, self.classes + list(names), torch.cat([self.text_features, extra]),
                              self.logit_scale, self.n_trained, self.seen_bias)

    def predict_proba(self, X) -> np.ndarray:
        """(n, len(classes)): the head's probabilities scaled by zero-shot's mass on the
        trained classes (less `seen_bias` in log space), beside zero-shot's on the novel ones."""
        self.head.check_fitted()
        with torch.no_grad():
            return self.proba(torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32)).numpy()

    def proba(self, X: torch.Tensor) -> torch.Tensor:
        """`predict_proba` in torch operations alone, on a tensor of features (what an
        exported graph runs: `fewclip.export`)."""
        head = self.head.logits(X).log_softmax(-1)
        if not self.novel:
            return head.exp()
        log_zs = (self.logit_scale * X @ self.text_features.T).log_softmax(-1)
        log_trained = log_zs[:, : self.n_trained].logsumexp(-1, keepdim=True)
        scores = torch.cat([log_trained + head - self.seen_bias, log_zs[:, self.n_trained:]], dim=1)
        return scores.softmax(-1)


# The classifier artefact (`models/classifier.pt`, `torch.load(weights_only=True)` reads it):
#   version        ARTEFACT_VERSION
#   mode           "few" or "zero"
#   head           `fewclip.heads.save_head` of the trained head (the zero-shot head in zero mode)
#   classes        the trained classes; text_classes: those, then the novel ones
#   text_features  (len(text_classes), dim) float32; templates: the prompt templates
#   logit_scale, seen_bias, model (the backbone param), model_sha256
#   precision      the image features' precision ("fp32", "bf16", "fp16"): predict embeds at it
ARTEFACT_VERSION = 3  # 2: heads keep chosen values and fitted state in `<name>_` attributes; 3: precision


def save_classifier(path, mode: str, head, classes: list[str], text: TextFeatures, seen_bias: float) -> None:
    """Write the train stage's artefact (the format above)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": ARTEFACT_VERSION, "mode": mode, "head": save_head(head), "classes": list(classes),
                "text_features": torch.from_numpy(text.features), "text_classes": list(text.classes),
                "templates": list(text.templates), "seen_bias": float(seen_bias),
                "logit_scale": float(text.logit_scale), "model": text.model, "model_sha256": text.model_sha256,
                "precision": text.precision},
               path)


def load_classifier(path) -> tuple[OpenVocabulary, dict]:
    """The train stage's artefact as an `OpenVocabulary` over every class it knows, and the
    saved dict (backbone name and SHA-256, templates, mode)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: trained classifier not found (run `dvc repro train`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: not a classifier written by the train stage ({type(e).__name__}: {e})") from None
    if not isinstance(saved, dict) or saved.get("version") != ARTEFACT_VERSION:
        found = saved.get("version", 1) if isinstance(saved, dict) else "?"
        raise UserError(f"{path}: a classifier of format {found}, this version of fewclip reads format "
                        f"{ARTEFACT_VERSION}; retrain it with `dvc repro train`")
    try:
        head = load_head(saved["head"])
        clf = OpenVocabulary(head, saved["text_classes"], saved["text_features"], saved["logit_scale"],
                             len(saved["classes"]), saved["seen_bias"])
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise UserError(f"{path}: not a classifier written by the train stage ({type(e).__name__}: {e})") from None
    return clf, saved
