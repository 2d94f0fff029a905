"""GPU JPEG decoding for the embed stage, and the CPU path that every other file takes.

DataLoader workers only read each file and route it from its bytes (`route`). A JPEG that
nvJPEG decodes as the CPU path would is decoded on the GPU, a batch per call (`decode_jpegs`),
and preprocessed by tensor ops matching CLIP's `_transform` (`preprocess_batch`); any other
file is decoded in the worker on the CPU path (`cpu_path`: `load_rgb`, CLIP's
preprocessing). `iter_batches` puts it together.

Which files take which path, and why: `fewclip.routing`.

Decoder: `torchvision.io.decode_jpeg`, nvJPEG on CUDA and libjpeg-turbo on the CPU (so the
tests run this code). torchvision 0.29 deprecates it for TorchCodec, whose
`decode_jpeg(list, device="cuda")` (0.16+, torch >= 2.11; 0.17.0 on PyPI) is the same
decoder, ported, plus a stream fix (meta-pytorch/torchcodec#1634). Not used yet: it is a new,
unpinned dependency whose CUDA build must match torch's, untried on a GPU here; torchvision
is pinned and bundles nvJPEG, and the call sits in `_decode` alone.

CUDA streams: torchvision allocates the outputs on the caller's stream and decodes on a
stream of its own, which the caller's stream then waits for; its own stream does not wait
for the caller's, so nvJPEG may overwrite a freed block that kernels queued on the caller's
stream still read (pytorch/vision#9606, unmerged). `_decode` synchronises the current stream
before the call, and after it, before the outputs and the input buffers are used again
(torchvision syncs its stream on return; TorchCodec dropped such host syncs).

Differences from the CPU path (`benchmarks/device_embed.py` measures them): nvJPEG, created
with default flags, upsamples 4:2:0 chroma by nearest neighbour where libjpeg interpolates;
`load_rgb` decodes large JPEGs at a reduced DCT scale (PIL's draft), the GPU at full size.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from . import SettingError
from .backbone.base import RESIZE_SHORTER_CENTER_CROP
from .pixels import BadImage, cannot_read, load_rgb
from .routing import CORRUPT, GPU, UNREADABLE, route
from .settings import DECODE_SETTINGS


def resolve_decode(setting: str, device, resize=lambda: RESIZE_SHORTER_CENTER_CROP) -> str:
    """"gpu" or "cpu" for the `embed.decode` setting: "auto" picks the GPU on CUDA when the
    GPU path implements the backbone's resize rule (`resize()`, asked only then: it may load
    the backbone), which is CLIP's."""
    on_cuda = torch.device(device).type == "cuda"
    if setting not in DECODE_SETTINGS:
        raise SettingError("decode", setting, f"one of {', '.join(DECODE_SETTINGS)}")
    if setting == "gpu" and not on_cuda:
        raise SettingError("decode", setting, f"needs CUDA, but the device is {device}; use auto or cpu")
    if setting == "cpu" or not on_cuda:
        return "cpu"
    rule = resize()
    if rule != RESIZE_SHORTER_CENTER_CROP:
        if setting == "gpu":
            raise SettingError("decode", setting, f"the GPU path implements CLIP's resize "
                               f"({RESIZE_SHORTER_CENTER_CROP}), not this backbone's ({rule}); use auto or cpu")
        return "cpu"
    return "gpu"


def _decode(tensors: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """One torchvision decode call, between the stream synchronisations the module
    docstring explains. Raises RuntimeError when any image fails."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    with warnings.catch_warnings():  # deprecated for TorchCodec: see the module docstring
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        out = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    return out


def decode_jpegs(datas: list[bytes | torch.Tensor], device) -> list[torch.Tensor | str]:
    """Decode JPEG files (bytes, or 1-D uint8 CPU tensors) to uint8 RGB (3, H, W) tensors on
    `device`, in one batched call. One bad file fails a batched call (torchvision returns no
    partial results), so then each file is decoded alone; a file that still fails gives
    "corrupt" in its place, for the caller to send to the CPU path. Order is kept."""
    device = torch.device(device)
    tensors = [d if isinstance(d, torch.Tensor) else torch.frombuffer(bytearray(d), dtype=torch.uint8)
               for d in datas]
    if len(tensors) > 1:
        try:
            return list(_decode(tensors, device))
        except RuntimeError:  # one bad file fails it all (a CUDA out-of-memory error too)
            pass  # so decode each file alone
    out: list[torch.Tensor | str] = []
    for t in tensors:
        try:
            out.append(_decode([t], device)[0])
        except torch.OutOfMemoryError:
            raise
        except RuntimeError:
            out.append(CORRUPT)
    return out


def _resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's Resize(size, bicubic) and CenterCrop(size) on a uint8 (1 or 3, H, W) image:
    float (3, size, size) in [0, 255]. Resizes as PIL does: width then height, each pass
    antialiased (PIL's a = -0.5 kernel) and rounded to 8 bits (clipping the overshoot)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1 or 3, H, W) image, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)  # torchvision's _compute_resized_output_size
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    x = image.expand(3, h, w).unsqueeze(0).float()
    for pass_size in [(h, new_w)] * (new_w != w) + [(new_h, new_w)] * (new_h != h):
        x = F.interpolate(x, size=pass_size, mode="bicubic", align_corners=False, antialias=True)
        x = x.clamp_(0, 255).round_()
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)  # CenterCrop's rounding
    return x[0, :, top:top + size, left:left + size]


def preprocess_batch(images: list[torch.Tensor], resolution: int, mean, std) -> torch.Tensor:
    """CLIP's `_transform(resolution)` as tensor ops on the images' device, normalised by the
    backbone's per-channel `mean` and `std`: (n, 3, res, res) float32 from a non-empty list
    of uint8 (1 or 3, H, W) images of any sizes (grey images get 3 channels)."""
    x = torch.stack([_resize_crop(img, resolution) for img in images]) / 255.0
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess_tensor(image: torch.Tensor, resolution: int, mean, std) -> torch.Tensor:
    """`preprocess_batch` of one image: float32 (3, resolution, resolution)."""
    return preprocess_batch([image], resolution, mean, std)[0]


def cpu_path(source: str | bytes, resolution: int, preprocess) -> tuple[torch.Tensor, str]:
    """The CPU path, for a file's path or its bytes: decode (`load_rgb`) and `preprocess`,
    giving (image, "") or (zeros, the reason it could not be decoded)."""
    try:
        image = load_rgb(io.BytesIO(source) if isinstance(source, bytes) else source, min_side=resolution)
        return preprocess(image), ""
    except BadImage as e:
        return torch.zeros(3, resolution, resolution), str(e) or "cannot decode"


class _RoutedFiles(Dataset):
    """Item i: (payload, error, route). A "gpu" file's payload is its bytes; any other file
    is decoded and preprocessed here, in the worker, on the CPU path, into a float tensor."""

    def __init__(self, paths: list[str], resolution: int, preprocess):
        self.paths, self.resolution, self.preprocess = paths, resolution, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            data = Path(self.paths[i]).read_bytes()
        except OSError as e:
            return torch.zeros(3, self.resolution, self.resolution), cannot_read(e), UNREADABLE
        reason = route(data)
        if reason == GPU:
            return data, "", GPU
        return (*cpu_path(data, self.resolution, self.preprocess), reason)


def _collate(items: list) -> tuple:
    """In the worker: the CPU path's images stacked into one tensor (one shared-memory
    handle a batch, however many there are), the "gpu" files' bytes (None for the others),
    errors, routes."""
    rows = [p for p, _, _ in items if isinstance(p, torch.Tensor)]
    return (torch.stack(rows) if rows else None, [p if isinstance(p, bytes) else None for p, _, _ in items],
            [e for _, e, _ in items], [r for _, _, r in items])


def iter_batches(paths: list[str], resolution: int, cpu_preprocess, device, batch_size: int = 64,
                 num_workers: int = 0, mean=None, std=None):
    """Yields (images, errors, routes) batch by batch, in the order of `paths`: images float32
    (b, 3, resolution, resolution) on `device`; errors "" or the reason the image could not
    be read, as `ImageFiles` gives it (its row is then zeros); routes "gpu", "unreadable" or
    the reason it took the CPU path (for `RouteCounts`). `cpu_preprocess`: the backbone's
    own preprocessing (CLIP's `_transform`), used on the CPU path; `mean`, `std`: its
    normalisation, which the GPU path applies (`preprocess_batch`)."""
    device = torch.device(device)
    loader = DataLoader(_RoutedFiles(paths, resolution, cpu_preprocess), batch_size=batch_size,
                        num_workers=num_workers, shuffle=False, collate_fn=_collate)
    for rows, datas, errors, routes in loader:
        images = torch.zeros(len(datas), 3, resolution, resolution, device=device)
        if rows is not None:
            images[[i for i, d in enumerate(datas) if d is None]] = rows.to(device)
        on_gpu = [i for i, d in enumerate(datas) if d is not None]
        decoded = {}
        for i, out in zip(on_gpu, decode_jpegs([datas[i] for i in on_gpu], device)):
            if isinstance(out, torch.Tensor):
                decoded[i] = out
            else:  # nvJPEG failed on it: the CPU path decides
                routes[i] = out
                image, errors[i] = cpu_path(datas[i], resolution, cpu_preprocess)
                images[i] = image.to(device)
        if decoded:
            images[list(decoded)] = preprocess_batch(list(decoded.values()), resolution, mean, std)
        yield images, errors, routes
