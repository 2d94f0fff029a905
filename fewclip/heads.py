"""Classifiers on cached CLIP features, in the estimator habit: `fit`, then `predict_proba`.

Every head takes L2-normalised features (n, dim) and integer labels, trains on the CPU (the
features are small; this keeps results identical from run to run), and returns class
probabilities (n, n_classes). `save_head` / `load_head` turn a fitted head into a plain dict
of tensors and back, so the trained artefact does not depend on pickling classes.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, TensorDataset, WeightedRandomSampler

from . import UserError

SAMPLERS = ("weighted", "uniform")


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


class ZeroShotHead:
    """CLIP zero-shot classification (Radford et al., ICML 2021): softmax over the scaled
    cosine similarity between image features and the class text features. Trains nothing."""

    name = "zero-shot"

    def __init__(self, text_features, logit_scale: float = 100.0):
        self.text_features = _tensor(text_features)
        self.logit_scale = float(logit_scale)

    def fit(self, X=None, y=None, X_val=None, y_val=None, on_epoch=None) -> "ZeroShotHead":
        return self

    def logits(self, X) -> torch.Tensor:
        return self.logit_scale * _tensor(X) @ self.text_features.T

    def predict_proba(self, X) -> np.ndarray:
        return self.logits(X).softmax(-1).numpy()

    def get_params(self) -> dict:
        return {"logit_scale": self.logit_scale}

    def state_dict(self) -> dict:
        return {"text_features": self.text_features}

    @classmethod
    def from_state(cls, params: dict, state: dict) -> "ZeroShotHead":
        return cls(state["text_features"], **params)


def class_balanced_sampler(labels, generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draws every class equally often: weight 1/count(class) per sample, with replacement.

    Without replacement (the original project's defect) the first draws favour small classes
    but every epoch still holds each sample exactly once, so the classes stay unbalanced.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    counts = torch.bincount(labels).double()
    weights = (1.0 / counts)[labels]
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)


class MLPHead:
    """The original project's head, rebuilt on cached features: dim -> 256 -> 128 -> C with
    BatchNorm, ReLU and dropout 0.2, Adam (lr 1e-3), keeping the epoch with the best
    validation accuracy and stopping early when it stops improving.

    Three defects of the original are fixed here:
      1. no ReLU on the output layer: logits must be able to be negative;
      2. the class-weighted sampler draws with replacement (`class_balanced_sampler`), so
         classes really are balanced (`sampler="uniform"` shuffles instead);
      3. train and validation accuracy are computed afresh every epoch, not as running
         averages over all epochs so far.
    """

    name = "mlp"

    def __init__(self, hidden=(256, 128), dropout: float = 0.2, lr: float = 1e-3,
                 weight_decay: float = 0.0, epochs: int = 100, batch_size: int = 32,
                 patience: int = 20, sampler: str = "weighted", seed: int = 0):
        if sampler not in SAMPLERS:
            raise UserError(f"params.yaml: sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
        self.hidden, self.dropout, self.lr = tuple(int(h) for h in hidden), float(dropout), float(lr)
        self.weight_decay, self.epochs, self.batch_size = float(weight_decay), int(epochs), int(batch_size)
        self.patience, self.sampler, self.seed = int(patience), sampler, int(seed)
        self.net_: nn.Sequential | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None

    def get_params(self) -> dict:
        return {"hidden": list(self.hidden), "dropout": self.dropout, "lr": self.lr,
                "weight_decay": self.weight_decay, "epochs": self.epochs, "batch_size": self.batch_size,
                "patience": self.patience, "sampler": self.sampler, "seed": self.seed}

    def _build(self, dim: int, n_classes: int) -> nn.Sequential:
        layers, width = [], dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(self.dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))  # fix 1: plain logits, no ReLU
        return nn.Sequential(*layers)

    def make_sampler(self, labels, generator: torch.Generator):
        if self.sampler == "weighted":
            return class_balanced_sampler(labels, generator)
        return RandomSampler(range(len(labels)), generator=generator)

    def fit(self, X, y, X_val=None, y_val=None, n_classes: int | None = None,
            on_epoch: Callable[[int, dict], None] | None = None) -> "MLPHead":
        """Train; with validation data keep the best epoch and stop after `patience` epochs
        without improvement, without it keep the last epoch. `on_epoch(epoch, metrics)` is
        called after every epoch with train/val accuracy and loss."""
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        X, y = _tensor(X), torch.as_tensor(np.asarray(y), dtype=torch.long)
        n_classes = n_classes or int(y.max()) + 1
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            X_val, y_val = _tensor(X_val), torch.as_tensor(np.asarray(y_val), dtype=torch.long)
        net = self._build(X.shape[1], n_classes)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loader = DataLoader(TensorDataset(X, y), batch_size=self.batch_size,
                            sampler=self.make_sampler(y, gen),
                            drop_last=len(y) % self.batch_size == 1)  # BatchNorm needs 2+ rows
        best, best_state, since_best = None, None, 0
        self.history_ = []
        for epoch in range(1, self.epochs + 1):
            net.train()
            correct = seen = 0  # fix 3: fresh counts every epoch
            loss_sum = 0.0
            for xb, yb in loader:
                out = net(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += int((out.argmax(1) == yb).sum())
                seen += len(yb)
                loss_sum += loss.item() * len(yb)
            row = {"train/acc": correct / seen, "train/loss": loss_sum / seen}
            if has_val:
                net.eval()
                with torch.no_grad():
                    out = net(X_val)
                row["val/acc"] = float((out.argmax(1) == y_val).float().mean())
                row["val/loss"] = float(F.cross_entropy(out, y_val))
            self.history_.append({"epoch": epoch, **row})
            if on_epoch:
                on_epoch(epoch, row)
            if not has_val:
                continue
            score = (row["val/acc"], -row["val/loss"])
            if best is None or score > best:
                best, best_state, self.best_epoch_, since_best = score, copy.deepcopy(net.state_dict()), epoch, 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)
        self.net_ = net.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        if self.net_ is None:
            raise RuntimeError("MLPHead.predict_proba called before fit")
        with torch.no_grad():
            return self.net_(_tensor(X)).softmax(-1).numpy()

    def state_dict(self) -> dict:
        first, last = self.net_[0], self.net_[-1]
        return {"dim": first.in_features, "n_classes": last.out_features,
                "best_epoch": self.best_epoch_, "net": self.net_.state_dict()}

    @classmethod
    def from_state(cls, params: dict, state: dict) -> "MLPHead":
        head = cls(**params)
        head.net_ = head._build(state["dim"], state["n_classes"])
        head.net_.load_state_dict(state["net"])
        head.net_.eval()
        head.best_epoch_ = state["best_epoch"]
        return head


HEADS = {"mlp": MLPHead}


def make_head(name: str, head_params: dict, sampler: str = "weighted", seed: int = 0):
    """A few-shot head by its `head` param name, configured from `heads.<name>` params."""
    if name not in HEADS:
        raise UserError(f"params.yaml: head={name!r} is not one of {', '.join(HEADS)}")
    kwargs = dict(head_params or {})
    if name == "mlp":
        kwargs.update(sampler=sampler, seed=seed)
    try:
        return HEADS[name](**kwargs)
    except TypeError as e:
        raise UserError(f"params.yaml: heads.{name}: {e}") from None


def save_head(head) -> dict:
    return {"name": head.name, "params": head.get_params(), "state": head.state_dict()}


def load_head(saved: dict):
    classes = {cls.name: cls for cls in (ZeroShotHead, *HEADS.values())}
    return classes[saved["name"]].from_state(saved["params"], saved["state"])
