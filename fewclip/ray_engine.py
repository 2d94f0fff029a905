"""Image embedding on a Ray cluster: the `embed_images` contract, run by Ray Data.

`embed_ray` gives exactly what `fewclip.embedding.embed_images` gives (features (n, dim)
float32, L2-normalised, in the order of `paths`; per path "" or the reason it could not be
read, its row then zeros), with Ray Data's batch-inference pattern: a dataset of
(index, path) rows, `map_batches` with a callable class that loads the backbone once per
actor (a fixed-size actor pool, one GPU per actor on a cluster with GPUs), and the driver
streaming the results with `iter_batches` into a preallocated array.

* Reading happens inside the actor (`_Embedder._image`): a file missing, unreadable or vanished
  since it was listed gets the same reason string as locally, and is counted as locally
  (`ray.data.read_binary_files` would instead fail the whole dataset on one missing file).
  The checkpoint (or `download_root`) and the images must be readable on every node.
* Order: rows carry their input index and the driver writes each into its place, so
  `preserve_order` is not needed (it would hold fast blocks back behind a slow one).
  Every index must arrive exactly once, else a RuntimeError: nothing is dropped silently.
* Failures: a killed actor (node lost, OOM, crash) is restarted up to `MAX_RESTARTS`
  times (`max_restarts`), and the batch it was running is resubmitted up to
  `MAX_TASK_RETRIES` times (`max_task_retries`); Ray Data's defaults are unlimited (-1),
  finite here so that a batch that kills its actor every time ends the run instead of
  looping (see `_retry_args` for Ray >= 2.64). A batch's output is returned whole when the
  call ends, so a retried batch is neither lost nor counted twice. Python exceptions are
  not retried (Ray Data's `actor_task_retry_on_errors` is off): unreadable images are not
  exceptions here, and anything else is a real error that stops the run. A backbone that
  does not load (a UserError in the actor) comes back as data and is raised as that one
  line on the driver (Ray would keep only its traceback text).
* Test hook: when the environment variable `FEWCLIP_RAY_KILL_ONCE` (read on the driver)
  names a file that does not exist, the first actor to get a batch creates it and kills
  its own process, so a test can check that the run still completes.
"""

from __future__ import annotations

import inspect
import math
import os
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import SettingError, UserError
from .pixels import cannot_read
from .decode import cpu_path

MAX_RESTARTS = 10       # restarts of one actor after its process died
MAX_TASK_RETRIES = 3    # resubmissions of one batch whose actor died while running it
CPUS_PER_ACTOR = 4      # CPU-only clusters: torch threads per actor (capped by node size)
MAX_CPUS_PER_GPU_ACTOR = 8  # GPU actors: CPUs (decoding threads) reserved per actor
KILL_ONCE_ENV = "FEWCLIP_RAY_KILL_ONCE"
NOT_INSTALLED = "embed.engine: ray needs Ray: pip install -e '.[ray]'"


class _Embedder:
    """The map_batches callable: one backbone per actor; a batch of {index, path} rows in,
    {index, features, error, fatal} out ("fatal": why the backbone did not load, else "")."""

    def __init__(self, model, sha256, device, download_root, threads, kill_once, precision="auto"):
        import torch

        from .backbone import load_backbone

        torch.set_num_threads(threads)
        self.torch, self.kill_once, self.error = torch, kill_once, None
        try:
            self.backbone = load_backbone(model, device, download_root, sha256, precision)
        except UserError as e:  # sent to the driver as data: Ray keeps only an error's text
            self.error = str(e)
            return
        self.resolution = self.backbone.resolution
        self.dim = self.backbone.dim
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _image(self, path: str):
        """Read here, in the actor, then the local CPU path on the bytes: the same image and
        the same reasons as the local engine."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return None, cannot_read(e)
        return cpu_path(data, self.resolution, self.backbone.preprocess)

    def __call__(self, batch: dict) -> dict:
        n = len(batch["index"])
        if self.error:
            return {"index": np.asarray(batch["index"], np.int64), "features": np.zeros((n, 1), np.float32),
                    "error": np.full(n, "", dtype=object), "fatal": np.full(n, self.error, dtype=object)}
        if self.kill_once:
            self._kill_once()
        paths = [str(p) for p in batch["path"]]
        done = list(self.pool.map(self._image, paths) if self.pool else map(self._image, paths))
        feats = np.zeros((len(paths), self.dim), np.float32)
        good = [i for i, (_, err) in enumerate(done) if not err]
        if good:
            images = self.torch.stack([done[i][0] for i in good])
            feats[good] = self.backbone.encode_images(images).cpu().numpy().astype(np.float32)
        return {"index": np.asarray(batch["index"], np.int64), "features": feats,
                "error": np.array([err for _, err in done], dtype=object),
                "fatal": np.full(n, "", dtype=object)}

    def _kill_once(self) -> None:
        try:
            fd = os.open(self.kill_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:  # another actor (or this one, before its restart) did it
            self.kill_once = None
            return
        os.close(fd)
        os._exit(1)


def embed_ray(model: str, sha256: str, paths: list[str], *, device: str = "auto",
              download_root: str | None = None, batch_size: int = 64, address: str | None = None,
              num_actors: int | None = None, progress: bool = True,
              precision: str = "auto") -> tuple[np.ndarray, list[str]]:
    """Features (n, dim) for `paths` and per path "" or why it could not be read, as
    `fewclip.embedding.embed_images` returns them, computed by actors on a Ray cluster.

    `model`, `sha256`, `device`, `download_root`, `precision`: as for
    `fewclip.backbone.load_backbone`, which each actor calls once. `address`: the cluster
    (`host:port`, `ray://host:port`, `auto`); None: `RAY_ADDRESS`, else a new local Ray. Ray is connected only if not yet
    initialised (else `address` is not used), and shut down at the end only if this call
    connected it; each call starts its own actor pool. `num_actors`: default one per GPU,
    or on CPUs one per `CPUS_PER_ACTOR` cluster CPUs (at most a node's CPUs each).
    """
    ray = _connect(address)
    started = not ray.is_initialized()
    if started:
        _init(ray, address)
    try:
        return _run(ray, model, sha256, list(paths), device, download_root, batch_size,
                    num_actors, progress, precision)
    finally:
        if started:
            ray.shutdown()


def _connect(address):
    try:
        import ray
        import ray.data  # the `ray[data]` extra
    except ImportError:
        raise UserError(NOT_INSTALLED) from None
    return ray


def _init(ray, address) -> None:
    """`ray.init`, with a quick check first: Ray itself retries an unreachable head for minutes."""
    target = address or os.environ.get("RAY_ADDRESS")
    if target and target not in ("auto", "local"):
        host, _, port = target.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            raise UserError(f"Ray cannot reach the Ray cluster at {target!r} "
                            f"({getattr(e, 'strerror', None) or e})") from None
    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Ray cannot reach the Ray cluster at "
                        f"{target or 'a new local Ray'!r} ({reason})") from None


def _resources(ray, device: str, num_actors):
    """(actor device, number of actors, per-actor CPUs, per-actor GPUs) for this cluster."""
    total = ray.cluster_resources()
    gpus, cpus = int(total.get("GPU", 0)), int(total.get("CPU", 0))
    node_cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]] or [0])
    if device.startswith("cuda") and not gpus:
        raise SettingError("device", device, "the Ray cluster has no GPUs")
    if num_actors is not None and (not isinstance(num_actors, int) or num_actors < 1):
        raise SettingError("num_actors", num_actors, "must be a whole number >= 1")
    if device != "cpu" and gpus:
        per_cpu = max(1, min(MAX_CPUS_PER_GPU_ACTOR, cpus // gpus))
        return "cuda", num_actors or gpus, per_cpu, 1
    if not cpus:
        raise UserError("the Ray cluster has no CPUs to run on")
    per_cpu = max(1, min(CPUS_PER_ACTOR, node_cpus))
    return "cpu", num_actors or max(1, cpus // per_cpu), per_cpu, 0


def _run(ray, model, sha256, paths, device, download_root, batch_size, num_actors, progress, precision):
    actor_device, actors, per_cpu, per_gpu = _resources(ray, device, num_actors)
    args = {"model": model, "sha256": sha256, "device": actor_device, "download_root": download_root,
            "threads": per_cpu, "kill_once": os.environ.get(KILL_ONCE_ENV) or None,
            "precision": precision if actor_device == device.split(":")[0] else "auto"}
    if not paths:  # nothing to embed, but the width is part of the contract
        width = ray.remote(num_cpus=1)(_width).remote(**args)
        return np.zeros((0, ray.get(width)), np.float32), []
    n = len(paths)
    ctx = ray.data.DataContext.get_current()  # each dataset keeps a copy of it, made here
    bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # one bar: ours, as locally
    try:
        ds = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(paths)],
                                 override_num_blocks=min(math.ceil(n / batch_size), 10_000))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            ds = ds.map_batches(_Embedder, fn_constructor_kwargs=args, batch_size=batch_size,
                                batch_format="numpy", num_cpus=per_cpu, num_gpus=per_gpu,
                                compute=ray.data.ActorPoolStrategy(size=actors),
                                **_retry_args(ds.map_batches))
    finally:
        ctx.enable_progress_bars = bars
    out, errors, seen = None, [""] * n, np.zeros(n, bool)
    with tqdm(total=n, desc="embed (ray)", unit="img", leave=False, disable=not progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if len(batch["fatal"]) and batch["fatal"][0]:  # the backbone did not load
                raise UserError(str(batch["fatal"][0]))
            index = np.asarray(batch["index"], np.int64)
            if seen[index].any():
                raise RuntimeError(f"ray engine: images delivered twice: {index[seen[index]][:5]}")
            seen[index] = True
            feats = np.asarray(batch["features"], np.float32)
            if out is None:
                out = np.zeros((n, feats.shape[1]), np.float32)
            out[index] = feats
            for i, err in zip(index.tolist(), batch["error"]):
                errors[i] = str(err)
            bar.update(len(index))
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise RuntimeError(f"ray engine: {len(missing)} images never came back, such as "
                           f"{[paths[i] for i in missing[:3]]}")
    return out, errors


def _retry_args(map_batches) -> dict:
    """`max_restarts` and `max_task_retries` for the actor pool. Ray Data takes them through
    `**ray_remote_args`, deprecated in Ray 2.60 (to go in 2.64) without a replacement; once
    gone, Ray Data's own actor-pool defaults apply: unlimited restarts and retries."""
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(map_batches).parameters.values()):
        return {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}
    return {}


def _width(model, sha256, device, download_root, threads, kill_once, precision) -> int:
    from .backbone import load_backbone

    return load_backbone(model, "cpu", download_root, sha256).dim
