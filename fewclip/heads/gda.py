"""Gaussian discriminant analysis fused with zero-shot CLIP."""

from __future__ import annotations

import numpy as np
import torch

from ..kinds import Grid, NonNegative
from .base import Head, as_labels, as_tensor, correct, grid, has_rows, register
from .selection import compare


@register
class GDA(Head):
    """Gaussian discriminant analysis fused with zero-shot CLIP (Wang et al., "A Hard-to-Beat
    Baseline for Training-free CLIP-based Adaptation", ICLR 2024). Class means and one shared
    covariance, shrunk towards a scaled identity with the Ledoit-Wolf estimate (scikit-learn)
    so that it can be inverted with few shots, give linear class scores
    x' S^-1 mu_k - mu_k' S^-1 mu_k / 2 (equal class priors), rescaled to the spread of the
    zero-shot logits; alpha weighs them against the zero-shot logits and is chosen on
    validation from `alphas` (alpha 0, zero-shot itself, is the prior candidate). Closed
    form, no training loop.

    The class text feature counts as one more shot of its class: moved across the modality
    gap (the mean training image feature minus the mean text feature of their classes), it is
    averaged into the class mean, and the covariance is that of the training features around
    these means. So one shot per class still gives a within-class covariance, and a class
    without shots keeps its moved text feature. On real CLIP ImageNet features at one shot
    this took validation accuracy from +0.2 to +1.0 points over zero-shot. Without text
    features the means are the shots' own and, with one shot per class, the covariance is
    that of all training features."""

    name = "gda"
    fit_imports = ("sklearn.covariance",)
    needs_text = True
    chosen_on_validation = ("alpha",)
    zero_shot_at = (("alpha", 0.0),)
    fitted = ("n_classes_", "alpha_", "weight_", "bias_")

    def __init__(self, text_features=None, logit_scale: float = 100.0, alpha: NonNegative = 1.0,
                 alphas: Grid = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100)):
        self.text_features, self.logit_scale = text_features, logit_scale
        self.alpha, self.alphas = alpha, alphas

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return self.zero_shot_logits(X) + self.alpha_ * (X @ self.weight_.T + self.bias_)

    def _means_and_covariance(self, X: np.ndarray, y: np.ndarray, n: int):
        from sklearn.covariance import ledoit_wolf

        sums, counts = np.zeros((n, X.shape[1])), np.zeros(n)
        np.add.at(sums, y, X)
        np.add.at(counts, y, 1)
        text = self.text()
        if text is not None:
            text = text.double().numpy()
            pseudo_shots = text + (X.mean(0) - text[y].mean(0))
            means = (sums + pseudo_shots) / (counts + 1)[:, None]
            residuals = X - means[y]
        else:
            means = sums / counts.clip(1)[:, None]
            within = len(y) - int((counts > 0).sum()) >= 2
            residuals = X - means[y] if within else X - X.mean(0)
        if len(residuals) >= 2:
            cov, _ = ledoit_wolf(residuals, assume_centered=True)
        else:
            cov = np.eye(X.shape[1])
        return means, counts, cov

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        X64, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        n = self._set_classes(y, n_classes)
        means, counts, cov = self._means_and_covariance(X64, y, n)
        w = means @ np.linalg.inv(cov + 1e-9 * np.eye(len(cov)))
        b = -0.5 * (w * means).sum(1)
        # Put the GDA scores on the zero-shot logits' scale (their spread on the training
        # features), so that alpha = 1 weighs both alike whatever the covariance's magnitude.
        # Without a text prior the scale only sets the softmax temperature: keep the raw scores.
        spread = (X64 @ w.T + b).std()
        zs_spread = float(self.zero_shot_logits(as_tensor(X)).std())
        factor = zs_spread / spread if spread > 0 and zs_spread > 0 else 1.0
        if self.text() is None:  # a class absent from training is never predicted
            b[counts == 0] = -1e4
        self.weight_ = torch.as_tensor(w * factor, dtype=torch.float32)
        self.bias_ = torch.as_tensor(b * factor, dtype=torch.float32)
        self.alpha_ = float(self.alpha)
        if has_rows(X_val) and self.text() is not None:
            Xv, yv = as_tensor(X_val), as_labels(y_val)
            zs, scores = self.zero_shot_logits(Xv), Xv @ self.weight_.T + self.bias_
            outcomes = {a: correct(zs + a * scores, yv) for a in (0.0, *grid(self.alphas))}  # 0: zero-shot
            self.selection_ = compare(outcomes, 0.0)
            self.alpha_ = self.selection_.chosen
