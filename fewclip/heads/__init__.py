"""Classifiers on cached CLIP features, in the estimator habit (`fewclip.heads.base`).

Heads (the `head` param): `mlp` (the original project's), `linear` (logistic regression),
`ncm` (nearest class mean), `tip-adapter` and `tip-adapter-f`, `gda`, `zs-linear`; the last
four use CLIP's zero-shot text classifier as a prior. `ZeroShotHead` is `mode: zero`. A new
head is one module with a `@register`ed `Head` subclass, whose `__init__` signature declares
its settings, and one import line below; the params schema reads the same declarations from
the source (`fewclip.pipeline.heads_schema`), so `params.yaml` needs only its block under `heads:`.

`save_head` / `load_head` turn a fitted head into a plain dict (its name, its params and its
declared fitted state: tensors and plain values) and back, so the trained artefact does not
depend on pickling classes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .. import SettingError
from .base import HEADS, SUPPLIED, Head, NotFittedError, one_thread, preload, register
# The registry: importing a head's module lists its heads in HEADS (`@register`), in this order
# (fewclip.pipeline.heads_schema reads these lines too).
from . import mlp, linear, prototypes, gda, zs_linear  # noqa: F401, I001  (one line per module)
from .gda import GDA
from .linear import LinearProbe
from .mlp import SAMPLERS, MLPHead, class_balanced_sampler
from .prototypes import NearestMean, TipAdapter, TipAdapterF
from .selection import SELECTION_Z, Choice, choose, compare
from .zero_shot import ZeroShotHead
from .zs_linear import ZSLinear

__all__ = ["HEADS", "SAMPLERS", "SELECTION_Z", "SUPPLIED", "Choice", "GDA", "Head", "LinearProbe", "MLPHead",
           "NearestMean", "NotFittedError", "TipAdapter", "TipAdapterF", "ZSLinear", "ZeroShotHead", "choose",
           "class_balanced_sampler", "compare", "fit_imports", "load_head", "make_head", "one_thread", "preload",
           "register", "save_head"]


def fit_imports(names) -> list[str]:
    """The modules that fitting the named heads imports (their `fit_imports`), for `one_thread`
    and `preload`."""
    return sorted({m for name in names if name in HEADS for m in HEADS[name].fit_imports})


def make_head(name: str, head_params: dict | None = None, text_features=None, logit_scale: float = 100.0,
              seed: int = 0) -> Head:
    """A few-shot head by its name, configured with its `settings()` (`head_params`); a head
    that `needs_text` also gets the class text features and the backbone's logit scale, one
    that `uses_seed` the seed."""
    if name not in HEADS:
        raise SettingError("head", name, f"one of {', '.join(HEADS)}")
    cls = HEADS[name]
    kwargs = dict(head_params or {})
    unknown = sorted(set(kwargs) - set(cls.settings()))
    if unknown:
        raise SettingError(f"{name} settings", unknown,
                           f"not settings of this head (it has {', '.join(cls.settings())})")
    if cls.uses_seed:
        kwargs.update(seed=seed)
    if cls.needs_text:
        kwargs.update(text_features=text_features, logit_scale=logit_scale)
    return cls(**kwargs)


def _plain(value):
    """A param or fitted value as torch.load(weights_only=True) reads it back: arrays become
    tensors, tuples lists, modules their state dicts."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, nn.Module):
        return value.state_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def save_head(head: Head) -> dict:
    """{"name", "params", "state"}: everything `load_head` needs, no pickled classes."""
    head.check_fitted()
    return {"name": head.name, "params": {k: _plain(v) for k, v in head.get_params().items()},
            "state": {attr: _plain(getattr(head, attr)) for attr in head.fitted}}


def load_head(saved: dict) -> Head:
    """The head `save_head` saved, fitted, ready to predict."""
    classes = {cls.name: cls for cls in (ZeroShotHead, *HEADS.values())}
    if saved.get("name") not in classes:
        raise ValueError(f"unknown head {saved.get('name')!r}")
    head = classes[saved["name"]](**saved["params"])
    for attr in head.fitted:
        value = saved["state"][attr]
        if hasattr(head, "restore") and isinstance(value, dict):
            value = head.restore(attr, value)
        setattr(head, attr, value)
    return head
