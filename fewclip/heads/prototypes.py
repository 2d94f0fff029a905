"""Heads that compare a feature with the training features themselves: nearest class mean,
and Tip-Adapter's key-value cache (training-free, or with fine-tuned keys)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kinds import Count, Grid, NonNegative, Positive
from ..metrics import epoch_row, figures
from .base import Head, as_labels, as_tensor, class_means, correct, grid, has_rows, register
from .selection import compare


@register
class NearestMean(Head):
    """Nearest class mean: each class is the normalised mean of its training features, and a
    feature's logits are `scale` times its cosine similarity to them. The simplest few-shot
    baseline (and Tip-Adapter's cache with one key per class); nothing to choose."""

    name = "ncm"
    fitted = ("n_classes_", "means_")

    def __init__(self, scale: Positive = 10.0):
        self.scale = scale

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        X, y = as_tensor(X), as_labels(y)
        self.means_ = class_means(X, y, self._set_classes(y, n_classes))

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        logits = float(self.scale) * X @ self.means_.T
        return logits.masked_fill(self.means_.norm(dim=1) == 0, -1e4)  # a class absent from training


@register
class TipAdapter(Head):
    """Tip-Adapter (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot
    Classification", ECCV 2022). A key-value cache of the few-shot features and their one-hot
    labels; a test feature's cache logits are exp(-beta (1 - cos)) affinities times the labels,
    added with weight alpha to the zero-shot logits. Training-free; alpha and beta are chosen
    on validation from `alphas` x `betas` (the prior candidate: the smallest alpha, with the
    best beta for it, or zero-shot itself where there is a text prior); the paper's defaults,
    alpha 1 and beta 5.5, are used without validation data."""

    name = "tip-adapter"
    needs_text = True
    chosen_on_validation = ("alpha", "beta")
    zero_shot_at = (("alpha", 0.0),)
    fitted = ("n_classes_", "alpha_", "beta_", "keys_", "values_")

    def __init__(self, text_features=None, logit_scale: float = 100.0, alpha: NonNegative = 1.0,
                 beta: NonNegative = 5.5, alphas: Grid = (0.1, 0.3, 1, 3, 10, 30, 100),
                 betas: Grid = (0.5, 1, 2, 3.5, 5.5, 7.5, 10)):
        self.text_features, self.logit_scale = text_features, logit_scale
        self.alpha, self.beta, self.alphas, self.betas = alpha, beta, alphas, betas

    def _logits(self, X, keys, alpha, beta) -> torch.Tensor:
        affinity = torch.exp(-beta * (1 - X @ keys.T))
        return self.zero_shot_logits(X) + alpha * affinity @ self.values_

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return self._logits(X, self.keys_, self.alpha_, self.beta_)

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        X, y = as_tensor(X), as_labels(y)
        self.values_ = F.one_hot(y, self._set_classes(y, n_classes)).float()
        self.keys_ = X.clone()
        self.alpha_, self.beta_ = float(self.alpha), float(self.beta)
        has_val = has_rows(X_val)
        if has_val:
            Xv, yv = as_tensor(X_val), as_labels(y_val)
        self._train_keys(X, y, Xv if has_val else None, yv if has_val else None, on_epoch)
        if has_val:
            with torch.no_grad():
                outcomes = {(a, b): correct(self._logits(Xv, self.keys_, a, b), yv)
                            for b in grid(self.betas) for a in grid(self.alphas)}
                if self.text() is not None:  # alpha 0: zero-shot itself
                    outcomes[(0.0, self.beta_)] = correct(self.zero_shot_logits(Xv), yv)
            # closest to zero-shot: the smallest cache weight, with the best sharpness for it
            prior = min(outcomes, key=lambda ab: (ab[0], -float(outcomes[ab].mean())))
            self.selection_ = compare(outcomes, prior)
            self.alpha_, self.beta_ = self.selection_.chosen

    def _train_keys(self, X, y, Xv, yv, on_epoch) -> None:
        """Tip-Adapter itself keeps the keys as they are."""


@register
class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: Tip-Adapter whose cache keys are first trained for `epochs` with AdamW
    and a cosine schedule, as in the paper (at the default alpha and beta), then alpha and
    beta are chosen as Tip-Adapter's."""

    name = "tip-adapter-f"
    fit_imports = ("torch._dynamo",)  # what torch.optim imports when it builds the first optimizer
    uses_seed = True
    stochastic = True
    trains_in_epochs = True

    def __init__(self, text_features=None, logit_scale: float = 100.0, alpha: NonNegative = 1.0,
                 beta: NonNegative = 5.5, alphas: Grid = (0.1, 0.3, 1, 3, 10, 30, 100),
                 betas: Grid = (0.5, 1, 2, 3.5, 5.5, 7.5, 10), epochs: Count = 20, lr: Positive = 1e-3,
                 batch_size: Count = 256, seed: int = 0):
        super().__init__(text_features, logit_scale, alpha, beta, alphas, betas)
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed

    def _train_keys(self, X, y, Xv, yv, on_epoch) -> None:
        seed, batch_size = int(self.seed), int(self.batch_size)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        keys = nn.Parameter(self.keys_.clone())
        opt = torch.optim.AdamW([keys], lr=float(self.lr), eps=1e-4)
        steps = int(self.epochs) * max(1, -(-len(y) // batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        self.history_ = []
        for epoch in range(1, int(self.epochs) + 1):
            right, loss_sum = 0, 0.0
            for idx in torch.randperm(len(y), generator=gen).split(batch_size):
                out = self._logits(X[idx], keys, self.alpha_, self.beta_)
                loss = F.cross_entropy(out, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                right += int((out.argmax(1) == y[idx]).sum())
                loss_sum += loss.item() * len(idx)
            val = None
            if Xv is not None:
                with torch.no_grad():
                    val = figures(self._logits(Xv, keys, self.alpha_, self.beta_), yv)
            row = epoch_row((right / len(y), loss_sum / len(y)), val)
            self.history_.append({"epoch": epoch, **row})
            if on_epoch:
                on_epoch(epoch, row)
        self.keys_ = keys.detach()
