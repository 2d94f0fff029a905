"""The frozen CLIP backbone: loading it by name or from a checkpoint file, and encoding.

`model` in params.yaml is either a CLIP model name (`ViT-B/32`, `ViT-B/16`, ... as listed by
`clip.available_models()`) or the path to a checkpoint file. Names go through `clip.load`,
which uses a verified copy in the cache folder or downloads one and checks its SHA-256.
Files may be OpenAI's TorchScript archives (read by `clip.load`) or plain state dicts
(`torch.save(model.state_dict())`), which are built with `clip.model.build_model`.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import urllib.error
import warnings
import zipfile
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

with warnings.catch_warnings():  # clip imports pkg_resources, which warns on import
    warnings.simplefilter("ignore")
    import clip
    from clip.clip import _MODELS, _transform
    from clip.model import CLIP, build_model

from . import UserError
from .cache import file_sha256

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
        return self.model.dtype

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
        # `fewclip.prompts.check_lengths` has refused longer prompts: never cut one short here
        tokens = clip.tokenize(texts, context_length=self.context_length, truncate=False)
        f = self.model.encode_text(tokens.to(self.device))
        return F.normalize(f.float(), dim=-1)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"params.yaml: embed.device={device!r} but CUDA is not available here")
    return torch.device(device)


def model_sha256(name: str) -> str:
    """The SHA-256 that identifies a backbone, without loading it: the published checksum of
    a CLIP model name (`clip.load` verifies its download against it), or a checkpoint file's."""
    if name in _MODELS:
        return _MODELS[name].split("/")[-2]
    if os.path.isfile(os.path.expanduser(name)):
        return file_sha256(os.path.expanduser(name))
    raise UserError(
        f"model {name!r} is neither a CLIP model name ({', '.join(clip.available_models())}) "
        "nor an existing checkpoint file; set `model` in params.yaml to one of those")


def load_backbone(name: str, device: str = "auto", download_root: str | None = None,
                  sha256: str | None = None) -> Backbone:
    """Load a frozen CLIP by name or checkpoint path; one clear UserError when that fails.
    `sha256`: the `model_sha256(name)` the caller already has (hashing a checkpoint file
    reads all of it)."""
    dev = resolve_device(device)
    root = os.path.expanduser(download_root or DEFAULT_CACHE)
    sha = sha256 or model_sha256(name)
    if name in _MODELS:
        model, preprocess = _load_named(name, dev, root)
    else:
        model, preprocess = _load_file(os.path.expanduser(name), dev)
    model.eval().requires_grad_(False)
    return Backbone(model=model, preprocess=preprocess, name=name, sha256=sha, device=dev)


class LazyBackbone:
    """A backbone that is loaded only when something must go through it.

    Its identity (`name`, `sha256`, `device`, `dtype`: float16 on a GPU, float32 on the CPU,
    as `load_backbone` sets them) is known at once, which is all the feature cache needs; the
    first use of anything else (`encode_images`, `model`, ...) loads it. So a run whose every
    image and text feature is cached never loads the checkpoint. `remote`: for the Ray
    engine, `device` names the cluster's device (`device_setting`), not checked here."""

    def __init__(self, name: str, device: str = "auto", download_root: str | None = None, remote: bool = False):
        self.name, self.download_root, self.device_setting = name, download_root, device
        # remote: the images go to a Ray cluster, whose devices need not be this machine's
        self.device = torch.device("cpu" if device == "auto" else device) if remote else resolve_device(device)
        self.sha256 = model_sha256(name)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.loaded: Backbone | None = None
        self.load_seconds = 0.0

    def load(self) -> Backbone:
        if self.loaded is None:
            start = time.perf_counter()
            here = str(self.device)
            if here.startswith("cuda") and not torch.cuda.is_available():  # remote: the cluster's device
                here = "cpu"  # (the class texts, encoded on this machine)
            self.loaded = load_backbone(self.name, here, self.download_root, self.sha256)
            self.load_seconds = time.perf_counter() - start
        return self.loaded

    def __getattr__(self, attr: str):  # only called for what the identity does not hold
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.load(), attr)


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
            f"{root} or set `model` in params.yaml to the checkpoint's path; to try the pipeline without "
            "real weights (timings, not accuracy): `python benchmarks/random_checkpoint.py ViT-B/32 "
            f"/tmp/random.pt`, then `dvc exp run -S model=/tmp/random.pt`") from None
    finally:
        socket.setdefaulttimeout(previous)


def _torchscript(path: str) -> bool:
    """Whether the file may be a TorchScript archive (OpenAI's checkpoints): a zip archive
    with TorchScript code in it. A state dict saved by `torch.save` is a zip without code."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("/constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _load_file(path: str, device: torch.device):
    if _torchscript(path):  # (trying torch.jit.load on anything else costs a second or so)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
                return clip.load(path, device=device, jit=False)
        except (EOFError, KeyError, RuntimeError, ValueError, OSError, pickle.UnpicklingError):
            # not a CLIP archive (KeyError: other weights), or clip.load tried torch.load on a file it had
            # read to the end (EOFError) and so could not read a plain state dict; try one here,
            # or say below what the file is not
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
