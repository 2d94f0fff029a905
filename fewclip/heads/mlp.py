"""The original project's head: a small MLP trained on the features."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import RandomSampler, WeightedRandomSampler

from .. import SettingError
from ..kinds import Batch, Count, Counts, NonNegative, Positive, Rate, Sampler
from ..metrics import epoch_row, figures
from ..settings import SAMPLERS
from .base import Head, as_labels, as_tensor, has_rows, register


def class_balanced_sampler(labels, generator: torch.Generator | None = None) -> WeightedRandomSampler:
    """Draws every class equally often: weight 1/count(class) per sample, with replacement.

    Without replacement (the original project's defect) the first draws favour small classes
    but every epoch still holds each sample exactly once, so the classes stay unbalanced.
    """
    labels = as_labels(labels)
    counts = torch.bincount(labels).double()
    weights = (1.0 / counts)[labels]
    return WeightedRandomSampler(weights, num_samples=len(labels), replacement=True, generator=generator)


@register
class MLPHead(Head):
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
    fit_imports = ("torch._dynamo",)  # what torch.optim imports when it builds the first optimizer
    uses_seed = True
    stochastic = True
    trains_in_epochs = True
    fitted = ("n_classes_", "dim_", "best_epoch_", "net_")

    def __init__(self, hidden: Counts = (256, 128), dropout: Rate = 0.2, lr: Positive = 1e-3,
                 weight_decay: NonNegative = 0.0, epochs: Count = 100, batch_size: Batch = 32,
                 patience: Count = 20, sampler: Sampler = "weighted", seed: int = 0):
        self.hidden, self.dropout, self.lr, self.weight_decay = hidden, dropout, lr, weight_decay
        self.epochs, self.batch_size, self.patience, self.sampler, self.seed = epochs, batch_size, patience, sampler, seed

    def build(self, dim: int, n_classes: int) -> nn.Sequential:
        """The untrained network (also what `load_head` fills with saved weights)."""
        layers, width = [], dim
        for h in self.hidden:
            layers += [nn.Linear(width, int(h)), nn.BatchNorm1d(int(h)), nn.ReLU(), nn.Dropout(float(self.dropout))]
            width = int(h)
        layers.append(nn.Linear(width, n_classes))  # plain logits: no ReLU after the last layer
        return nn.Sequential(*layers)

    def make_sampler(self, labels, generator: torch.Generator):
        if self.sampler not in SAMPLERS:
            raise SettingError("sampler", self.sampler, f"one of {', '.join(SAMPLERS)}")
        if self.sampler == "weighted":
            return class_balanced_sampler(labels, generator)
        return RandomSampler(range(len(labels)), generator=generator)

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        """Train; with validation data keep the best epoch and stop after `patience` epochs
        without improvement, without it keep the last epoch. `on_epoch(epoch, metrics)` is
        called after every epoch with train/val accuracy and loss."""
        seed, batch_size = int(self.seed), int(self.batch_size)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        X, y = as_tensor(X), as_labels(y)
        n_classes = self._set_classes(y, n_classes)
        has_val = has_rows(X_val)
        if has_val:
            X_val, y_val = as_tensor(X_val), as_labels(y_val)
        self.dim_ = int(X.shape[1])
        net = self.build(self.dim_, n_classes)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        sampler = self.make_sampler(y, gen)
        drop_last = len(y) % batch_size == 1  # BatchNorm needs 2+ rows
        best, best_state, since_best = None, None, 0
        self.history_ = []
        for epoch in range(1, int(self.epochs) + 1):
            net.train()
            right = seen = 0  # counted afresh every epoch
            loss_sum = 0.0
            for xb, yb in self._batches(X, y, sampler, batch_size, drop_last):
                out = net(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                right += int((out.argmax(1) == yb).sum())
                seen += len(yb)
                loss_sum += loss.item() * len(yb)
            val = None
            if has_val:
                net.eval()
                with torch.no_grad():
                    val = figures(net(X_val), y_val)
            row = epoch_row((right / seen, loss_sum / seen), val)
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
                if since_best >= int(self.patience):
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)
        self.net_ = net.eval()

    @staticmethod
    def _batches(X, y, sampler, batch_size: int, drop_last: bool):
        """One epoch's mini-batches, as `DataLoader(TensorDataset(X, y), batch_size, sampler,
        drop_last)` gives them (the same rows, the same random streams: the sampler's own
        generator, and the one draw from torch's global generator that a DataLoader makes
        when an epoch starts, which the dropout masks follow), without its per-row fetching
        and collating, most of a fit's time on a few hundred rows."""
        torch.empty((), dtype=torch.int64).random_()  # DataLoader's per-epoch base seed
        order = torch.tensor(list(sampler), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            yield X[idx], y[idx]

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        return self.net_(X)

    def restore(self, attr: str, value):
        """`load_head`'s hook for a fitted attribute that is a module: rebuild, then fill."""
        net = self.build(self.dim_, self.n_classes_)
        net.load_state_dict(value)
        return net.eval()

