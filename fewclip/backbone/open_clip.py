"""The open_clip family (the optional `open_clip_torch` package: `pip install -e '.[open_clip]'`).

Names (the `model` param):

- `open_clip:<architecture>:<pretrained tag>`, say `open_clip:ViT-B-16:datacomp_xl_s13b_b90k`:
  open_clip's published weights, downloaded into the cache folder (`embed.cache_dir`) from
  the Hugging Face hub and used from there afterwards; the tag also sets the preprocessing.
- `open_clip:<architecture>:<weights file>`, say `open_clip:ViT-B-32:/models/vit-b-32.pt`:
  a state dict (or a checkpoint holding one) for that architecture; works with no network.
- `open_clip:local-dir:<folder>`: open_clip's own layout of a folder holding
  `open_clip_config.json` (the architecture and preprocessing) and the weights; offline too.
- `open_clip:hf-hub:<org>/<repo>`: a model repository on the Hugging Face hub.

`open_clip.list_models()` lists the architectures, `open_clip.list_pretrained()` the tags.
The model's own preprocessing (`model.visual.preprocess_cfg`: resolution, mean, std,
interpolation and resize mode) is used as it is. open_clip is imported only when such a name
is used (it takes about 3 s).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import pickle
from pathlib import Path

import torch

from .. import SettingError, UserError
from ..cache import file_sha256
from .base import RESIZE_SHORTER_CENTER_CROP, ClipModel, Tokenizer

PREFIX = "open_clip:"
SCHEMAS = ("local-dir", "hf-hub")  # open_clip's own name schemes, passed on as they are
LIBRARIES = ("open_clip_torch", "timm")  # what its preprocessing and models come from
INSTALL = "pip install -e '.[open_clip]'"


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise UserError(f"open_clip models need the open_clip package, which is not installed: {INSTALL}") from None
    return open_clip


def known(name: str) -> bool:
    return name.startswith(PREFIX)


def parse(name: str) -> tuple[str, str]:
    """(architecture, pretrained) of an `open_clip:` name; for the `local-dir` and `hf-hub`
    schemes, (`local-dir:<folder>` or `hf-hub:<repo>`, "")."""
    rest = name[len(PREFIX):]
    if rest.split(":", 1)[0] in SCHEMAS:
        return rest, ""
    arch, sep, pretrained = rest.partition(":")
    if not arch or not sep or not pretrained:
        raise SettingError("model", name, "an open_clip name is open_clip:<architecture>:<pretrained tag or weights "
                           "file>, such as open_clip:ViT-B-16:datacomp_xl_s13b_b90k, or open_clip:local-dir:<folder>")
    return arch, pretrained


def _weights_file(pretrained: str) -> Path | None:
    path = Path(os.path.expanduser(pretrained))
    return path if path.is_file() else None


def check_name(name: str) -> tuple[str, str]:
    """(architecture, pretrained) once both are known to open_clip; one UserError otherwise."""
    arch, pretrained = parse(name)
    oc = _open_clip()
    if arch.startswith("local-dir:"):
        folder = Path(os.path.expanduser(arch.split(":", 1)[1]))
        if not (folder / "open_clip_config.json").is_file():
            raise SettingError("model", name, f"{folder} holds no open_clip_config.json (open_clip's local-dir layout)")
        return arch, pretrained
    if arch.startswith("hf-hub:"):
        return arch, pretrained
    if arch not in oc.list_models():
        near = difflib.get_close_matches(arch, oc.list_models(), n=3, cutoff=0.6)
        raise SettingError("model", name, f"open_clip has no architecture {arch!r}"
                           + (f"; did you mean {', '.join(near)}?" if near else "")
                           + " (python -c 'import open_clip; print(open_clip.list_models())' lists them)")
    tags = oc.list_pretrained_tags_by_model(arch)
    if _weights_file(pretrained) is None and pretrained not in tags:
        raise SettingError("model", name, f"{pretrained!r} is neither a pretrained tag of {arch} "
                           f"({', '.join(tags) or 'it has none'}) nor an existing weights file")
    return arch, pretrained


def model_sha256(name: str) -> str:
    """What identifies the model: the architecture with the weights file's SHA-256, the
    published tag's configuration (its hub repository or address, its preprocessing), or
    the local folder's config and weights."""
    arch, pretrained = check_name(name)
    h = hashlib.sha256(f"open_clip\0{arch}\0".encode())
    if arch.startswith("local-dir:"):
        folder = Path(os.path.expanduser(arch.split(":", 1)[1]))
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            h.update(f"{f.name}\0{file_sha256(f)}\0".encode())
    elif arch.startswith("hf-hub:"):
        pass  # the repository's name (its files are the hub's)
    elif (path := _weights_file(pretrained)) is not None:
        h.update(file_sha256(path).encode())
    else:
        from open_clip.pretrained import get_pretrained_cfg

        h.update(json.dumps(get_pretrained_cfg(arch, pretrained), sort_keys=True, default=str).encode())
        h.update(pretrained.encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _open_clip_tokenizer(name: str):
    """open_clip's tokenizer object of the model (what `OpenCLIP.tokenize` calls). Its own
    BPE tokenizer is bundled; SigLIP's and other Hugging Face tokenizers need `transformers`
    and a download."""
    arch, _ = check_name(name)
    try:
        return _open_clip().get_tokenizer(arch)
    except (ImportError, OSError) as e:
        raise UserError(f"model {name!r}: its tokenizer must come from the Hugging Face hub and could not be "
                        f"loaded ({type(e).__name__}: {str(e).splitlines()[0][:160]}); install transformers "
                        "(pip install transformers) and run once with network access, which caches it") from None


@functools.lru_cache(maxsize=8)
def tokenizer(name: str) -> Tokenizer:
    """The model's text side, without its weights."""
    arch, _ = check_name(name)
    tok = _open_clip_tokenizer(name)
    if hasattr(tok, "encode"):  # open_clip's SimpleTokenizer: ids without the start and end tokens
        count = lambda text: len(tok.encode(text)) + 2  # noqa: E731
    else:  # a Hugging Face tokenizer counts its special tokens itself
        count = lambda text: len(tok.tokenizer(text)["input_ids"])  # noqa: E731
    from importlib import metadata

    ident = (f"open_clip_torch=={metadata.version('open_clip_torch')} {type(tok).__name__} "
             f"{getattr(tok, 'tokenizer_name', '') or arch.split(':')[0]} context {tok.context_length}")
    return Tokenizer(int(tok.context_length), count, ident)


def _resize_rule(cfg: dict) -> str:
    size = cfg["size"] if isinstance(cfg["size"], int) else tuple(cfg["size"])
    square = isinstance(size, int) or size[0] == size[1]
    if cfg.get("interpolation") == "bicubic" and cfg.get("resize_mode") == "shortest" and square:
        return RESIZE_SHORTER_CENTER_CROP
    return f"{cfg.get('interpolation')} resize, mode {cfg.get('resize_mode')!r}, to {size}"


class OpenCLIP(ClipModel):
    """A frozen open_clip model in eval mode, with its own preprocessing."""

    family = "open_clip"
    libraries = LIBRARIES

    def __init__(self, model, preprocess, name: str, sha256: str, device: torch.device, precision: str = "fp32"):
        self.model, self.preprocess, self.name, self.sha256, self.device = model, preprocess, name, sha256, device
        self.precision = precision
        cfg = dict(model.visual.preprocess_cfg)
        size = cfg["size"]
        self.resolution = int(size if isinstance(size, int) else size[0])
        self.mean, self.std = tuple(cfg["mean"]), tuple(cfg["std"])
        self.resize = _resize_rule(cfg)
        self.tokenizer = tokenizer(name)
        self.dtype = next(model.parameters()).dtype
        with torch.no_grad():  # the width of the shared embedding, whatever the towers are
            self.dim = int(model.encode_text(self.tokenize(["a"]).to(device)).shape[-1])

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return _open_clip_tokenizer(self.name)(texts)


HUB_HOST = "huggingface.co"


def _offline_unless_reachable() -> bool:
    """Put the Hugging Face hub client into offline mode when its host does not resolve, so
    that a tag already downloaded is used from the cache and a missing one fails at once
    (online, the client retries for about a minute first). Whether the host resolved."""
    import socket

    try:
        socket.getaddrinfo(HUB_HOST, 443)
        return True
    except OSError:
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True
        return False


def load(name: str, device: torch.device, download_root: str, sha256: str, precision: str = "fp32") -> OpenCLIP:
    arch, pretrained = check_name(name)
    oc = _open_clip()
    weights = _weights_file(pretrained)
    online = True if weights or arch.startswith("local-dir:") else _offline_unless_reachable()
    import logging

    logging.disable(logging.ERROR)  # open_clip logs what it then raises
    try:
        model, _, preprocess = oc.create_model_and_transforms(
            arch, pretrained=str(weights or pretrained) or None, device=device,
            precision="fp16" if precision == "fp16" else "fp32",
            cache_dir=download_root, require_pretrained=not arch.startswith("hf-hub:"))
    except RuntimeError as e:
        text = " ".join(str(e).split())
        if "Failed to download" in text:
            raise UserError(f"cannot load {name!r}: its weights are not in {download_root} and the download failed "
                            f"({'no network: ' + HUB_HOST + ' does not resolve' if not online else text[:160]}); on a "
                            f"machine without internet, copy the weights file here and set `model` to "
                            f"open_clip:{arch}:<that file>") from None
        if weights is None:
            raise
        raise UserError(f"{weights}: does not hold weights for open_clip's {arch}: {text[:200]}") from None
    except (AssertionError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        if weights is None:  # not the user's file: open_clip's own fault
            raise
        raise UserError(f"{weights}: does not hold weights for open_clip's {arch} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0].split('. ')[0][:160]})") from None
    finally:
        logging.disable(logging.NOTSET)
    model.eval().requires_grad_(False)
    return OpenCLIP(model, preprocess, name, sha256, device, precision)
