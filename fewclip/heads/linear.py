"""The linear probe: logistic regression on the features."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..kinds import Count, Grid, Positive
from .base import Head, as_labels, as_tensor, correct, grid, has_rows, register
from .selection import compare


@register
class LinearProbe(Head):
    """Linear probe: multinomial logistic regression on the features (Radford et al., ICML
    2021, sec. 3.2), scikit-learn's L-BFGS solver, the inverse regularisation strength C
    chosen on validation from `Cs` (the prior candidate: the smallest C, the strongest
    regularisation); `C` without validation data."""

    name = "linear"
    chosen_on_validation = ("C",)
    fit_imports = ("sklearn.linear_model",)
    fitted = ("n_classes_", "C_", "weight_", "bias_")

    def __init__(self, Cs: Grid = (0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000), C: Positive = 10.0,
                 max_iter: Count = 1000):
        self.Cs, self.C, self.max_iter = Cs, C, max_iter

    def _fit_one(self, X, y, C, n_classes):
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            # with one or two shots sklearn warns that y "could represent a regression problem"
            warnings.filterwarnings("ignore", message="The number of unique classes")
            clf = LogisticRegression(C=C, max_iter=int(self.max_iter)).fit(X, y)
        coef = torch.as_tensor(clf.coef_, dtype=torch.float32)
        icpt = torch.as_tensor(clf.intercept_, dtype=torch.float32)
        if len(clf.classes_) == 2:  # sklearn keeps one weight vector for two classes
            coef, icpt = torch.cat([-coef / 2, coef / 2]), torch.cat([-icpt / 2, icpt / 2])
        weight = torch.zeros(n_classes, X.shape[1])
        bias = torch.full((n_classes,), -1e4)  # a class absent from training is never predicted
        weight[clf.classes_], bias[clf.classes_] = coef, icpt
        return weight, bias

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        n_classes = self._set_classes(y, n_classes)
        if not has_rows(X_val):
            self.C_ = float(self.C)
            self.weight_, self.bias_ = self._fit_one(X, y, self.C_, n_classes)
            return
        Xv, yv = as_tensor(X_val), as_labels(y_val)
        Cs = grid(self.Cs)
        fits = {C: self._fit_one(X, y, C, n_classes) for C in Cs}
        self.selection_ = compare({C: correct(Xv @ w.T + b, yv) for C, (w, b) in fits.items()}, min(Cs))
        self.C_ = self.selection_.chosen
        self.weight_, self.bias_ = fits[self.C_]

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.weight_.T + self.bias_
