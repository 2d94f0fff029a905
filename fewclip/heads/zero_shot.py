"""Zero-shot CLIP (`mode: zero`), the head that trains nothing."""

from __future__ import annotations

import torch

from .. import UserError
from .base import Head


class ZeroShotHead(Head):
    """CLIP zero-shot classification (Radford et al., ICML 2021): softmax over the scaled
    cosine similarity between image features and the class text features. It learns
    nothing, so it predicts without `fit` (which does nothing)."""

    name = "zero-shot"
    needs_text = True
    fitted = ()

    def kept_zero_shot(self) -> bool:
        return True  # it is zero-shot CLIP

    def __init__(self, text_features, logit_scale: float = 100.0):
        if text_features is None:
            raise UserError("zero-shot classification needs the class text features (features/text.npz)")
        self.text_features = text_features
        self.logit_scale = logit_scale

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        pass

    def fit(self, X=None, y=None, X_val=None, y_val=None, n_classes=None, on_epoch=None) -> "ZeroShotHead":
        return super().fit(X, y, X_val, y_val, n_classes, on_epoch)

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return self.zero_shot_logits(X)
