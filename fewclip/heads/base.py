"""The head contract, in the habit of scikit-learn's estimators.

- `__init__` only stores its arguments, under their own names; `get_params()` reads them back,
  derived from the signature, so a head is rebuilt from its params alone. The signature is
  also where a head's settings are declared, once: name, kind (`fewclip.kinds`: the
  constraints the params schema checks) and default (`settings()`); the arguments the
  pipeline supplies itself (`SUPPLIED`: the text prior, the seed) are not settings.
- `@register` lists a head class in `HEADS`, by its `name` (the `head` param), in the order
  the modules are imported (`fewclip.heads`: one import line per module).
- `fit(X, y, X_val, y_val, n_classes, on_epoch)` learns from L2-normalised features (n, dim)
  and integer labels. What it chooses on the validation features (a regularisation strength,
  a blending weight, an epoch) and what it learns are attributes with a trailing underscore
  (`C_`, `alpha_`, `weight_`); the params are never changed, and every `fit` starts afresh.
- `predict_proba(X)` returns (n, n_classes) probabilities (`predict_log_proba`, their logarithms);
  before `fit` it raises NotFittedError.
- `kept_zero_shot()` says whether a fitted text-prior head chose its prior, zero-shot CLIP
  itself (`zero_shot_at`: alpha 0, say), so that the training photos change no prediction.
- `fitted` names the state that predicting needs: `fewclip.heads.save_head` / `load_head`
  store it (tensors and plain values, no pickled classes) and restore it for any head.
- Class flags say what a head needs, instead of checks on its name: `needs_text` (CLIP's
  zero-shot classifier as a prior: the `text_features` and `logit_scale` params), `uses_seed`
  (a `seed` param), `stochastic` (its result depends on the seed), `trains_in_epochs` (calls
  `on_epoch` and keeps the figures in `history_`; a head may skip computing figures that
  nobody listens to: zs-linear without `on_epoch`). Listening never changes what is learnt.
- `fit_imports` names the modules a fit imports on first use (scikit-learn's solvers; torch.optim
  imports torch._dynamo when it builds the first optimizer, about a second): `one_thread`
  imports them before it limits the thread pools, which only reaches pools already loaded,
  and a process that forks fitting workers imports them once, before the fork.

Heads train on the CPU: the features are small, and it keeps results identical between runs.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import typing
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..kinds import SUPPLIED


class NotFittedError(RuntimeError):
    """A head was asked to predict before `fit`."""


@contextmanager
def one_thread(imports=()):
    """Fit heads with one thread for torch, OpenMP and BLAS (scikit-learn). Their matrices are
    small (hundreds of rows, 512 wide), where more threads save little, and thread pools
    that spin while another process holds the cores slow every small operation down many
    times over (benchmarks/shots_speed.py measures both). `imports`: modules to import first
    (the heads' `fit_imports`): a library loaded later, such as SciPy's own OpenBLAS or
    scikit-learn's OpenMP, would keep its default threads. Restores the settings after."""
    from threadpoolctl import threadpool_limits

    preload(imports)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def preload(modules) -> None:
    """Import `modules` (names) now, with the garbage collector paused (imports make no
    garbage, and collecting during them costs a fifth of their time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        if enabled:
            gc.enable()


def as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


def as_labels(y) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(y), dtype=torch.long)


def has_rows(X) -> bool:
    return X is not None and len(X) > 0


def grid(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def class_means(X: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, dim) L2-normalised mean training feature per class; zeros for a class
    without training features."""
    return F.normalize(torch.zeros(n_classes, X.shape[1]).index_add_(0, y, X), dim=-1)


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per validation image: 1.0 where the candidate is right, else 0.0."""
    return (logits.argmax(-1) == y).float()


OnEpoch = Callable[[int, dict], None]
HEADS: dict[str, type["Head"]] = {}


def register(cls: type["Head"]) -> type["Head"]:
    """List a head class in `HEADS` under its `name`."""
    if not cls.name or cls.name in HEADS:
        raise ValueError(f"{cls.__name__}: a head needs a name of its own, not {cls.name!r}")
    HEADS[cls.name] = cls
    return cls


class Head:
    name = ""
    needs_text = False
    uses_seed = False
    stochastic = False
    trains_in_epochs = False
    chosen_on_validation: tuple[str, ...] = ()
    # (param, value) pairs, any of which, chosen, makes a text-prior head zero-shot CLIP itself
    zero_shot_at: tuple[tuple[str, float], ...] = ()
    fit_imports: tuple[str, ...] = ()
    fitted: tuple[str, ...] = ("n_classes_",)

    @classmethod
    def param_names(cls) -> list[str]:
        return [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def settings(cls) -> dict[str, tuple[Any, Any]]:
        """{setting: (kind, default)}: the params a user sets (`heads.<name>`), from the signature."""
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
        return {p.name: (hints.get(p.name, Any), p.default) for p in inspect.signature(cls.__init__).parameters.values()
                if p.name in cls.param_names() and p.name not in SUPPLIED}

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k != "text_features"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def fit(self, X, y, X_val=None, y_val=None, n_classes: int | None = None,
            on_epoch: OnEpoch | None = None) -> "Head":
        """Learn from (X, y); choose on (X_val, y_val) only. Forgets any earlier fit first."""
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self._fit(X, y, X_val, y_val, n_classes, on_epoch)
        return self

    def _fit(self, X, y, X_val, y_val, n_classes, on_epoch) -> None:
        raise NotImplementedError

    def logits(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        self.check_fitted()
        with torch.no_grad():
            return self.logits(as_tensor(X)).softmax(-1).numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        """log `predict_proba(X)`, computed from the logits: exact where a probability is too
        small for float32."""
        self.check_fitted()
        with torch.no_grad():
            return self.logits(as_tensor(X)).log_softmax(-1).double().numpy()

    def check_fitted(self) -> None:
        missing = [a for a in self.fitted if not hasattr(self, a)]
        if missing:
            raise NotFittedError(f"{type(self).__name__} ({self.name}) is not fitted: call fit before predicting")

    def chosen(self) -> dict:
        """The params chosen on validation by the last fit (their values without validation
        data are the params themselves)."""
        return {p: getattr(self, f"{p}_") for p in self.chosen_on_validation}

    def kept_zero_shot(self) -> bool:
        """Whether the fitted head predicts as zero-shot CLIP: a text-prior head whose choice on
        validation kept its prior (`zero_shot_at`), so that the training photos change nothing."""
        self.check_fitted()
        return self.text() is not None and any(float(getattr(self, f"{p}_")) == v for p, v in self.zero_shot_at)

    # The text prior, for heads with `needs_text`: CLIP's zero-shot classifier.
    def text(self) -> torch.Tensor | None:
        tf = getattr(self, "text_features", None)
        return None if tf is None else as_tensor(tf)

    def zero_shot_logits(self, X: torch.Tensor) -> torch.Tensor:
        text = self.text()
        if text is None:  # only for measuring heads on features without class names
            return X.new_zeros(len(X), self.n_classes_)
        return float(self.logit_scale) * X @ text.T

    def _set_classes(self, y, n_classes: int | None) -> int:
        """n_classes_: the text prior's rows, else `n_classes`, else the largest label + 1."""
        text = self.text()
        if text is not None:
            self.n_classes_ = int(text.shape[0])
        else:
            self.n_classes_ = int(n_classes or int(np.asarray(y).max()) + 1)
        return self.n_classes_
