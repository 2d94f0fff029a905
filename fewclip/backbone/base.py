"""What a backbone is: the one interface the rest of the package uses.

A backbone is a frozen image-text model in eval mode. It carries everything a caller needs,
so that nothing outside its family's module reads the model's internals:

- identity: `name` (the `model` param as given), `sha256` (the checkpoint's, or the
  published checksum of a named model: cache keys and the classifier artefact use it),
  `family`, `libraries` (what its preprocessing comes from), `device`, `dtype` (the
  weights'), `precision` (the image encoder's arithmetic: "fp32", "fp16", or "bf16", which
  runs fp32 weights under autocast; `precision_key` names it for the feature cache);
- its input: `resolution`, `mean` and `std` (per RGB channel), `resize` (the rule, in words:
  the GPU decode path implements it, `fewclip.decode`), and `preprocess` (the CPU path's
  transform of a PIL image to a (3, resolution, resolution) tensor: a small picklable
  callable, which DataLoader workers may receive without the model);
- its output: `dim` (the feature width) and `logit_scale` (its learned softmax temperature);
- its text side: `context_length` and `count_tokens(text)` (start and end tokens included,
  for the over-long-prompt check), `tokenizer_id` (for the text cache's keys);
- `encode_images(batch)` and `encode_texts(texts)`: L2-normalised float32 features;
  `image_encoder()`, the torch module `encode_images` runs (preprocessed float32 images in,
  L2-normalised float32 features out), for exporting it (`fewclip.export`).

The text side is known without loading the weights (`Tokenizer`), so that a run whose
features are all cached never loads them (`fewclip.backbone.LazyBackbone`). `ClipModel` is
the encoding of a CLIP-shaped torch model, which both families' backbones share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..settings import RESIZE_SHORTER_CENTER_CROP  # noqa: F401  (the families' rule)

# the feature cache's name for each precision (fp32 and fp16 as the weights' dtypes were named)
PRECISION_KEYS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class Tokenizer:
    """A family's text side, without its weights."""

    context_length: int
    count_tokens: Callable[[str], int]  # with the start and end tokens
    tokenizer_id: str


class Backbone:
    """The interface (see the module docstring); a family subclasses it."""

    family = ""
    libraries: tuple[str, ...] = ()  # the distributions its preprocessing comes from
    name: str
    sha256: str
    device: torch.device
    dtype: torch.dtype
    precision: str
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize = RESIZE_SHORTER_CENTER_CROP
    dim: int
    logit_scale: float
    tokenizer: Tokenizer
    preprocess: Callable

    @property
    def precision_key(self) -> str:
        """The precision as the feature cache's key names it (the dtype features are computed in)."""
        return PRECISION_KEYS[self.precision]

    @property
    def context_length(self) -> int:
        return self.tokenizer.context_length

    @property
    def tokenizer_id(self) -> str:
        return self.tokenizer.tokenizer_id

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count_tokens(text)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def image_encoder(self) -> torch.nn.Module:
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


class ClipModel(Backbone):
    """A backbone around a CLIP-shaped torch `model` (`encode_image`, `encode_text`, and
    `logit_scale` as a log), as both families' models are: the encoding they share. A family
    sets `model` and implements `tokenize(texts)`."""

    model: torch.nn.Module

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    def image_encoder(self) -> torch.nn.Module:
        return ImageEncoder(self.model, self.dtype)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 features of a batch of preprocessed images; under bf16 the
        matrix products run in bf16 (autocast), the weights and the normalisations in fp32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.image_encoder()(images.to(self.device))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        # `fewclip.prompts.check_lengths` has refused longer prompts: nothing is cut short here
        f = self.model.encode_text(self.tokenize(texts).to(self.device))
        return F.normalize(f.float(), dim=-1)


class ImageEncoder(torch.nn.Module):
    """A CLIP-shaped model's image side as a module: preprocessed images (any float dtype) in,
    L2-normalised float32 features out, computed in the weights' `dtype`."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images.to(self.dtype)).float(), dim=-1)
