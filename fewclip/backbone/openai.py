"""The OpenAI CLIP family (the `clip` package): a CLIP model name or a checkpoint file.

`model` is either a CLIP model name (`ViT-B/32`, `ViT-B/16`, ... as listed by
`clip.available_models()`) or the path to a checkpoint file. Names go through `clip.load`,
which uses a verified copy in the cache folder or downloads one and checks its SHA-256.
Files may be OpenAI's TorchScript archives (read by `clip.load`) or plain state dicts
(`torch.save(model.state_dict())`), which are built with `clip.model.build_model`. The
`clip` package's private `_MODELS` (names, addresses, checksums) and `_transform` are used
here only.
"""

from __future__ import annotations

import functools
import os
import pickle
import socket
import urllib.error
import warnings
import zipfile

import torch

from .. import SettingError, UserError
from ..cache import file_sha256
from .base import RESIZE_SHORTER_CENTER_CROP, ClipModel, Tokenizer

DOWNLOAD_TIMEOUT_S = 60


@functools.lru_cache(maxsize=1)
def _clip():
    """The `clip` package, imported on first use: it takes about 2.5 s (pkg_resources, which
    warns on import, with it), which a check of a checkpoint file's name need not pay."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip
        import clip.clip
        import clip.model
        import clip.simple_tokenizer
    return clip


def _models() -> dict:
    return _clip().clip._MODELS  # name -> download address, whose folder is the file's SHA-256


# CLIP's per-channel normalisation of RGB in [0, 1] (`clip.clip._transform`)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77  # tokens every OpenAI CLIP text encoder reads, start and end included


LIBRARIES = ("openai-clip",)  # its preprocessing: `clip.clip._transform`
RESIZE = RESIZE_SHORTER_CENTER_CROP  # every OpenAI model's


@functools.lru_cache(maxsize=1)
def tokenizer(name: str = "") -> Tokenizer:
    """CLIP's BPE tokenizer (the same for every OpenAI model), without loading any weights."""
    bpe = _clip().simple_tokenizer.SimpleTokenizer()
    return Tokenizer(CONTEXT_LENGTH, lambda text: len(bpe.encode(text)) + 2,
                     f"openai-clip=={_version()} bpe_simple_vocab_16e6 context {CONTEXT_LENGTH}")


def _version() -> str:
    from importlib import metadata

    return metadata.version("openai-clip")


class OpenAIClip(ClipModel):
    """A frozen OpenAI CLIP (`clip.model.CLIP`) in eval mode."""

    family = "openai"
    libraries = LIBRARIES
    mean, std = MEAN, STD

    def __init__(self, model, name: str, sha256: str, device: torch.device, precision: str | None = None):
        self.model, self.name, self.sha256, self.device = model, name, sha256, device
        self.precision = precision or ("fp16" if model.dtype == torch.float16 else "fp32")
        self.resolution = int(model.visual.input_resolution)
        self.dim = int(model.text_projection.shape[1])
        self.tokenizer = tokenizer(name)
        self.preprocess = _clip().clip._transform(self.resolution)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        context = int(self.model.positional_embedding.shape[0])
        return _clip().tokenize(texts, context_length=context, truncate=False)


def known(name: str) -> bool:
    """Whether `name` is this family's: a CLIP model name, or a file (a checkpoint)."""
    return os.path.isfile(os.path.expanduser(name)) or name in _models()


def check_name(name: str) -> None:
    """One UserError unless `name` is a CLIP model name or an existing file."""
    if not known(name):
        raise SettingError("model", name, f"neither a CLIP model name ({', '.join(_models())}), nor an "
                           "existing checkpoint file, nor an open_clip name (open_clip:<architecture>:<tag or file>)")


def model_sha256(name: str) -> str:
    """The SHA-256 that identifies a backbone, without loading it: the published checksum of
    a CLIP model name (`clip.load` verifies its download against it), or a checkpoint file's."""
    if not os.path.isfile(os.path.expanduser(name)) and name in _models():
        return _models()[name].split("/")[-2]
    check_name(name)
    return file_sha256(os.path.expanduser(name))


def load(name: str, device: torch.device, download_root: str, sha256: str, precision: str = "fp32") -> OpenAIClip:
    """The frozen model `name` on `device` at `precision` (resolved: fp32, fp16 or bf16); one
    clear UserError when that fails. `clip` keeps fp16 weights on CUDA, fp32 on the CPU."""
    if not os.path.isfile(os.path.expanduser(name)) and name in _models():
        model = _load_named(name, device, download_root)
    else:
        model = _load_file(os.path.expanduser(name), device)
    if precision != "fp16":  # fp16 (CUDA only) is clip's own conversion, done on loading
        model.float()
    model.eval().requires_grad_(False)
    return OpenAIClip(model, name, sha256, device, precision)


def _load_named(name: str, device: torch.device, root: str):
    filename = os.path.basename(_models()[name])
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # clip's download has no timeout of its own
    try:
        return _clip().load(name, device=device, jit=False, download_root=root)[0]
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        # a download that failed (no network, a timeout) or whose checksum did not match;
        # any other RuntimeError (a CUDA error, say) is not a failed download
        if isinstance(e, RuntimeError) and not isinstance(e, OSError) and "checksum" not in str(e).lower():
            raise
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"cannot load CLIP model {name!r}: no verified copy of {filename} in {root} and the "
            f"download failed ({reason}); on a machine without internet, copy {filename} into "
            f"{root} or use the checkpoint's path as the model; to try the pipeline without real "
            "weights (timings, not accuracy): `python benchmarks/random_checkpoint.py ViT-B/32 "
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


def _load_torchscript(path: str, device: torch.device):
    """The model of an OpenAI TorchScript archive, or None when `path` is not a CLIP archive:
    other weights (KeyError), or a file clip.load read to the end trying torch.load on it
    (EOFError), which may still be a plain state dict."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
            return _clip().load(path, device=device, jit=False)[0]
    except (EOFError, KeyError, RuntimeError, ValueError, OSError, pickle.UnpicklingError) as e:
        if _device_error(e):
            raise
        return None


def _device_error(e: BaseException) -> bool:
    """A CUDA (or other device) failure, which says nothing about the file."""
    return isinstance(e, RuntimeError) and any(w in str(e) for w in ("CUDA", "cuDNN", "out of memory"))


def _load_file(path: str, device: torch.device):
    # (trying torch.jit.load on anything but a TorchScript archive costs a second or so)
    model = _load_torchscript(path, device) if _torchscript(path) else None
    if model is not None:
        return model
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        model = _clip().model.build_model(dict(state)).to(device)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, EOFError,
            pickle.UnpicklingError) as e:  # what torch.load and build_model raise for other files
        if _device_error(e):
            raise
        raise UserError(f"{path}: not a CLIP checkpoint (neither a TorchScript archive nor a "
                        f"CLIP state dict): {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if device.type == "cpu":
        model.float()
    return model
