"""The frozen CLIP backbone: loading it by name or from a checkpoint file, and encoding.

`model` in params.yaml is either a CLIP model name (`ViT-B/32`, `ViT-B/16`, ... as listed by
`clip.available_models()`) or the path to a checkpoint file. Names go through `clip.load`,
which uses a verified copy in the cache folder or downloads one and checks its SHA-256.
Files may be OpenAI's TorchScript archives (read by `clip.load`) or plain state dicts
(`torch.save(model.state_dict())`), which are built with `clip.model.build_model`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.error
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

with warnings.catch_warnings():  # clip imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import clip
    from clip.clip import _MODELS, _transform
    from clip.model import CLIP, build_model

from . import UserError

DEFAULT_CACHE = "~/.cache/clip"
DOWNLOAD_TIMEOUT_S = 60


@dataclass
class Backbone:
    """A frozen CLIP in eval mode, its image preprocessing, and what identifies it."""

    model: CLIP
    preprocess: Callable
    name: str
    sha256: str
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.visual.conv1.weight.dtype

    @property
    def context_length(self) -> int:
        return int(self.model.positional_embedding.shape[0])

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 features of a batch of preprocessed images."""
        f = self.model.encode_image(images.to(self.device, self.dtype))
        return F.normalize(f.float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = clip.tokenize(texts, context_length=self.context_length, truncate=True)
        f = self.model.encode_text(tokens.to(self.device))
        return F.normalize(f.float(), dim=-1)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"params.yaml: embed.device={device!r} but CUDA is not available here")
    return torch.device(device)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_backbone(name: str, device: str = "auto", download_root: str | None = None) -> Backbone:
    """Load a frozen CLIP by name or checkpoint path; one clear UserError when that fails."""
    dev = resolve_device(device)
    root = os.path.expanduser(download_root or DEFAULT_CACHE)
    if name in _MODELS:
        model, preprocess = _load_named(name, dev, root)
        sha = _MODELS[name].split("/")[-2]  # clip.load verified the file against this
    elif os.path.isfile(os.path.expanduser(name)):
        path = os.path.expanduser(name)
        model, preprocess = _load_file(path, dev)
        sha = file_sha256(path)
    else:
        raise UserError(
            f"model {name!r} is neither a CLIP model name ({', '.join(clip.available_models())}) "
            "nor an existing checkpoint file; set `model` in params.yaml to one of those")
    model.eval().requires_grad_(False)
    return Backbone(model=model, preprocess=preprocess, name=name, sha256=sha, device=dev)


def _load_named(name: str, device: torch.device, root: str):
    filename = os.path.basename(_MODELS[name])
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # clip's download has no timeout of its own
    try:
        return clip.load(name, device=device, jit=False, download_root=root)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"cannot load CLIP model {name!r}: no verified copy of {filename} in {root} and the "
            f"download failed ({reason}); on a machine without internet, copy {filename} into "
            f"{root} or set `model` in params.yaml to the checkpoint's path") from None
    finally:
        socket.setdefaulttimeout(previous)


def _load_file(path: str, device: torch.device):
    try:  # OpenAI's TorchScript archives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
            return clip.load(path, device=device, jit=False)
    except Exception:  # clip.load cannot read plain state dicts with this torch: build them here
        pass
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        model = build_model(dict(state)).to(device)
    except Exception as e:
        raise UserError(f"{path}: not a CLIP checkpoint (neither a TorchScript archive nor a "
                        f"CLIP state dict): {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if device.type == "cpu":
        model.float()
    return model, _transform(model.visual.input_resolution)
