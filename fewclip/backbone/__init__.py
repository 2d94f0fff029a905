"""Backbones: the interface (`base.Backbone`), the families, and loading one by name.

A family is a module with `known(name)`, `check_name(name)`, `model_sha256(name)`, `tokenizer(name)`, `LIBRARIES`
(the distributions its preprocessing comes from, for the feature cache's key) and
`load(name, device, download_root, sha256)`; `FAMILIES` lists them in the order they are
asked whether a name is theirs, the name's scheme deciding: `open_clip` (`open_clip:...`
names, the optional open_clip package) and `openai` (the `clip` package: CLIP model names
and checkpoint files), which also says what is wrong with a name nobody knows.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .. import SettingError
from ..settings import PRECISIONS
from . import open_clip, openai
from .base import Backbone, Tokenizer

FAMILIES = (open_clip, openai)
DEFAULT_CACHE = "~/.cache/clip"

__all__ = ["Backbone", "DEFAULT_CACHE", "FAMILIES", "LazyBackbone", "Tokenizer", "check_name", "family_of",
           "load_backbone",
           "model_sha256", "native_bf16", "resolve_device", "resolve_precision"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError("device", device, "CUDA is not available here; use auto or cpu")
    return torch.device(device)


def native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX512_BF16 or AMX), as Linux's
    /proc/cpuinfo lists its flags; False where that cannot be read. Without them torch
    emulates bf16, slower than fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {w for line in text.splitlines() if line.startswith("flags") for w in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """The image encoder's arithmetic for `precision` on `device`: `auto` is fp16 on CUDA, bf16
    on a CPU with native bf16 (`native_bf16`), else fp32. A precision the device cannot run
    well is refused: bf16 on a CPU without it, fp16 on a CPU."""
    if precision not in PRECISIONS:
        raise SettingError("precision", precision, f"one of {', '.join(PRECISIONS)}")
    cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        return "fp16" if cuda else ("bf16" if native_bf16() else "fp32")
    if precision == "bf16" and not cuda and not native_bf16():
        raise SettingError("precision", precision, "this CPU has no native bf16 (AVX512_BF16 or AMX), where it "
                           "runs slower than fp32; use fp32, or auto (fp32 here)")
    if precision == "fp16" and not cuda:
        raise SettingError("precision", precision, "fp16 runs on CUDA only; on a CPU use fp32, bf16 (with "
                           "AVX512_BF16 or AMX) or auto")
    return precision


def family_of(name: str):
    """The family module whose name `name` is; the last family says what is wrong otherwise."""
    for family in FAMILIES:
        if family.known(name):
            return family
    return FAMILIES[-1]


def check_name(name: str) -> None:
    """One UserError unless some family can load a model of this name (its form, and what can be
    known without the weights: the file exists, the architecture and tag are open_clip's)."""
    family_of(name).check_name(name)


def model_sha256(name: str) -> str:
    """What identifies backbone `name`, without loading it (see its family's `model_sha256`)."""
    return family_of(name).model_sha256(name)


def load_backbone(name: str, device: str = "auto", download_root: str | None = None,
                  sha256: str | None = None, precision: str = "auto") -> Backbone:
    """Load frozen backbone `name` (its family's rules) at `precision` (`resolve_precision`);
    one clear UserError when that fails. `sha256`: the `model_sha256(name)` the caller
    already has (hashing a checkpoint file reads all of it)."""
    family = family_of(name)
    here = resolve_device(device)
    return family.load(name, here, os.path.expanduser(download_root or DEFAULT_CACHE),
                       sha256 or family.model_sha256(name), resolve_precision(precision, here))


class LazyBackbone(Backbone):
    """A backbone that is loaded only when something must go through it.

    Its identity (`name`, `sha256`, `device`, `precision`: resolved by `resolve_precision`
    for this machine's device or, `remote`, the cluster's) and its text side
    (`context_length`, `count_tokens`, `tokenizer_id`) are known at once, which is all the
    feature cache and the prompt check need; the first use of anything else
    (`encode_images`, `resolution`, ...) loads it, so a run whose every image and text
    feature is cached never loads the checkpoint. `remote`:
    for the Ray engine, `device` names the cluster's device (`device_setting`), not checked
    here."""

    def __init__(self, name: str, device: str = "auto", download_root: str | None = None, remote: bool = False,
                 precision: str = "auto"):
        self.name, self.download_root, self.device_setting = name, download_root, device
        # remote: the images go to a Ray cluster, whose devices need not be this machine's
        self.device = torch.device("cpu" if device == "auto" else device) if remote else resolve_device(device)
        self._family = family_of(name)
        self.family = self._family.__name__.rsplit(".", 1)[-1]
        self.sha256 = self._family.model_sha256(name)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.libraries = self._family.LIBRARIES
        self.tokenizer = self._family.tokenizer(name)
        self.loaded: Backbone | None = None
        self.load_seconds = 0.0

    @property
    def resize(self) -> str:
        """The family's resize rule where it is one for all its models, else the model's."""
        return getattr(self._family, "RESIZE", None) or self.load().resize

    def load(self) -> Backbone:
        if self.loaded is None:
            start = time.perf_counter()
            here = str(self.device)
            if here.startswith("cuda") and not torch.cuda.is_available():  # remote: the cluster's device
                here = "cpu"  # (the class texts, encoded on this machine)
            self.loaded = load_backbone(self.name, here, self.download_root, self.sha256,
                                        self.precision if here == str(self.device) else "auto")
            self.load_seconds = time.perf_counter() - start
        return self.loaded

    # what needs the weights
    resolution = property(lambda self: self.load().resolution)
    mean = property(lambda self: self.load().mean)
    std = property(lambda self: self.load().std)
    dim = property(lambda self: self.load().dim)
    logit_scale = property(lambda self: self.load().logit_scale)
    preprocess = property(lambda self: self.load().preprocess)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.load().encode_images(images)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.load().encode_texts(texts)
