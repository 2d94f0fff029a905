"""Batched image embedding: the local engine's loop (CPU or GPU decoding), the feature
cache in front of it, and the Ray engine behind the same call (`embed_cached`).
"""

from __future__ import annotations

import os
import queue
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import SettingError
from .cache import NoCache, file_sha256
from .decode import cpu_path, iter_batches, resolve_decode
from .pixels import cannot_read
from .routing import RouteCounts
from .settings import ENGINES

class ImageFiles(Dataset):
    """Preprocessed images; a file that fails to decode yields a zero image and its error."""

    def __init__(self, paths: list[str], preprocess, resolution: int):
        self.paths, self.preprocess, self.resolution = paths, preprocess, resolution

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return cpu_path(self.paths[i], self.resolution, self.preprocess)


def resolve_workers(num_workers, device) -> int:
    """`auto`: no worker processes on the CPU (on few cores they slow the forward down, which
    needs every core: measured 18.0 against 16.4 images/s for ViT-B/32 on 2 cores), up to 8
    on a GPU machine, where decoding would otherwise starve the GPU."""
    if num_workers == "auto":
        return 0 if getattr(device, "type", str(device)) == "cpu" else min(8, os.cpu_count() or 1)
    if not isinstance(num_workers, int) or num_workers < 0:
        raise SettingError("num_workers", num_workers, "'auto' or a whole number >= 0")
    return num_workers


def prefetch(batches, device, depth: int = 2):
    """Yields what `batches` yields, in order, computed ahead by a background thread (at most
    `depth` batches ahead), so that decoding and preprocessing the next batch overlaps the
    model's forward on this one. On CUDA the thread queues its work on a stream of its own
    and waits for it before handing a batch over; the batch's tensors are then marked as
    used on the consumer's stream, so the allocator does not reuse them early. An exception
    in the thread is raised here; closing this generator stops the thread."""
    device = torch.device(device)
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with torch.cuda.stream(side) if side is not None else nullcontext():
                for batch in batches:
                    if side is not None:
                        side.synchronize()
                    if not put(batch):
                        return
            put(done)
        except BaseException as e:  # handed to the consumer, raised there
            put(e)

    thread = threading.Thread(target=produce, name="fewclip-prefetch", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            if side is not None:
                for t in item:
                    if isinstance(t, torch.Tensor) and t.is_cuda:
                        t.record_stream(torch.cuda.current_stream(device))
            yield item
    finally:
        stop.set()
        thread.join()


def iter_embed(backbone, paths: list[str], batch_size: int = 64, num_workers: int = 0,
               desc: str = "embed", progress: bool = True, decode: str = "cpu", routes=None,
               ahead: bool | None = None):
    """Yields (features (b, dim) float32, errors) batch by batch, in the order of `paths`;
    an error is "" or the reason that image could not be read (its row is then zeros).

    `decode` ("cpu", "gpu" or "auto": `fewclip.decode.resolve_decode`): "gpu" decodes JPEGs
    with nvJPEG and preprocesses them on the GPU, every other file as on the CPU path
    (`fewclip.decode.iter_batches`); `routes` (a `fewclip.routing.RouteCounts`) then counts
    which path each file took. `ahead` (default: on CUDA) prepares the next batch in a
    background thread while the model runs on this one (`prefetch`)."""
    resolution = backbone.resolution
    if resolve_decode(decode, backbone.device, lambda: backbone.resize) == "gpu":
        batches = iter_batches(paths, resolution, backbone.preprocess, backbone.device, batch_size, num_workers,
                               backbone.mean, backbone.std)
    else:
        loader = DataLoader(ImageFiles(paths, backbone.preprocess, resolution), batch_size=batch_size,
                            num_workers=num_workers, shuffle=False, pin_memory=backbone.device.type == "cuda")
        batches = ((images, list(errs), ["cpu"] * len(errs)) for images, errs in loader)
    if ahead if ahead is not None else backbone.device.type == "cuda":
        batches = prefetch(batches, backbone.device)
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False, disable=not progress) as bar:
        for images, errs, how in batches:
            feats = backbone.encode_images(images).cpu().numpy().astype(np.float32)
            feats[[bool(e) for e in errs]] = 0.0
            if routes is not None:
                routes.update(how)
            yield feats, list(errs)
            bar.update(len(errs))


def embed_images(backbone, paths: list[str], batch_size: int = 64, num_workers: int = 0,
                 desc: str = "embed", progress: bool = True, decode: str = "cpu", engine: str = "local",
                 address: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Features (n, dim) for `paths`, and for each path "" or the reason it could not be read.

    Rows of unreadable images are zeros; the caller drops them and reports the reasons.
    `embed_cached` without a cache (files with the same content are still embedded once).
    """
    return embed_cached(backbone, paths, NoCache(), batch_size, num_workers, desc, progress, decode=decode,
                        engine=engine, address=address)


def _embed_remote(backbone, paths: list[str], batch_size: int, address: str | None, progress: bool):
    """`fewclip.ray_engine.embed_ray` for this backbone. Its actors use the device setting as
    given (`auto`: the cluster's GPUs when it has any), not what it means on this machine."""
    from .ray_engine import embed_ray

    return embed_ray(backbone.name, backbone.sha256, paths,
                     device=getattr(backbone, "device_setting", None) or str(backbone.device),
                     download_root=getattr(backbone, "download_root", None), batch_size=batch_size,
                     address=address, progress=progress, precision=backbone.precision)


@dataclass
class CacheStats:
    cached: int = 0     # images whose features came from the cache
    embedded: int = 0   # images run through the backbone (and stored)
    failed: int = 0     # images that could not be read or decoded
    routes: RouteCounts = field(default_factory=RouteCounts)  # the decoding path of each embedded file


def embed_cached(backbone, paths: list[str], cache, batch_size: int = 64, num_workers: int = 0,
                 desc: str = "embed", progress: bool = True, stats: CacheStats | None = None,
                 dim: int | None = None, decode: str = "cpu", engine: str = "local",
                 address: str | None = None) -> tuple[np.ndarray, list[str]]:
    """`embed_images` through a `fewclip.cache.FeatureCache` (or `NoCache`): only images whose
    content is not cached yet go through the backbone, and each batch is stored as soon as it
    is done, so a killed run loses at most one batch of work. Files with the same content are
    embedded once. When every image is cached, the backbone is not touched (a
    `fewclip.backbone.LazyBackbone` then never loads); `dim`, the feature width, is then taken
    from the cached features, or from the argument for an empty list. Returns what
    `embed_images` returns.

    `engine="ray"` sends the images that are not cached to a Ray cluster (`address`; None:
    `RAY_ADDRESS` or a local Ray) in one `fewclip.ray_engine.embed_ray` call, and stores what
    comes back; the driver does not load the backbone (`decode` applies to "local" only)."""
    if engine not in ENGINES:
        raise SettingError("engine", engine, f"one of {', '.join(ENGINES)}")
    stats = stats if stats is not None else CacheStats()
    errors = [""] * len(paths)
    keys: list[str | None] = []
    for i, path in enumerate(paths):
        try:
            keys.append(file_sha256(path))
        except OSError as e:
            keys.append(None)
            errors[i] = cannot_read(e)
    todo: dict[str, list[int]] = {}
    hits: dict[int, np.ndarray] = {}
    for i, key in enumerate(keys):
        if key is None:
            continue
        hit = cache.get(key)
        if hit is not None and hit.ndim == 1 and (dim is None or hit.shape == (dim,)):
            dim = len(hit)
            hits[i] = hit
        else:
            todo.setdefault(key, []).append(i)
    remote = None
    if todo and engine == "ray":  # the cluster's result also gives the width: nothing loads here
        remote = _embed_remote(backbone, [paths[todo[k][0]] for k in todo], batch_size, address, progress)
        dim = remote[0].shape[1]
    elif todo or dim is None:
        dim = backbone.dim
    out = np.zeros((len(paths), dim), np.float32)
    for i, hit in hits.items():
        if hit.shape == (dim,):
            out[i] = hit
            stats.cached += 1
        else:  # a stray entry of another width: embed that image again
            todo.setdefault(keys[i], []).append(i)
    order = list(todo)
    done = 0
    if remote is not None and len(remote[1]) < len(order):  # stray-width entries found above
        more = _embed_remote(backbone, [paths[todo[k][0]] for k in order[len(remote[1]):]], batch_size, address,
                             progress)
        remote = (np.concatenate([remote[0], more[0]]), remote[1] + more[1])
    if remote is not None:
        batches = [remote]
    else:  # nothing to embed: leave the backbone unloaded
        batches = iter_embed(backbone, [paths[todo[k][0]] for k in order], batch_size, num_workers, desc,
                             progress, decode, stats.routes) if order else []
    for feats, errs in batches:
        for key, f, err in zip(order[done:done + len(errs)], feats, errs):
            for i in todo[key]:
                out[i], errors[i] = f, err
            if not err:
                cache.put(key, f)
                stats.embedded += len(todo[key])
        done += len(errs)
    stats.failed += sum(bool(e) for e in errors)
    return out, errors
