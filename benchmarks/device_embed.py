"""GPU decoding against today's CPU decoding, end to end, on a CUDA machine (issue 14).

For each architecture (random weights of the published architecture, fp16 on CUDA, as in
`embed_speed.py`) prints a markdown table row: the bare `encode_image` forward on ready
tensors, today's path (`fewclip.embedding.iter_embed`: decode and preprocess in CPU workers),
the GPU-decode path (`fewclip.decode.iter_batches` + the same encode), each path's ratio to
the bare forward, the GPU path's route counts, and how close its features are to today's
(cosine per image over the distinct photos). Above the table: the pixel difference of
nvJPEG against libjpeg on the same photos (same preprocessing), and what nvJPEG does with a
corrupt and a truncated JPEG. The photos (`--data`, searched recursively) are repeated to
`--n` images. With `--engines local ray` (Ray installed) a second table gives the Ray
engine (`fewclip.ray_engine.embed_ray`, a new local Ray on this machine: one actor per GPU,
the checkpoint saved to a file as a user's would be) against the local engine's CPU-decode
path: images/s over the whole call and net of the actor's start-up, and the cosine of its
features against the local engine's.

    python benchmarks/device_embed.py --data data/vehicles               # on a GPU
    python benchmarks/device_embed.py --data data/vehicles --smoke       # CPU, 64 images, ViT-B/32
    python benchmarks/device_embed.py --data data/vehicles --engines local ray
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from embed_speed import backbone, bare_forward, sync
from random_checkpoint import random_clip, save_state_dict

import fewclip.embedding
from fewclip.backbone import resolve_device
from fewclip.cache import file_sha256
from fewclip.data import find_images
from fewclip.backbone.openai import MEAN, STD
from fewclip.decode import decode_jpegs, preprocess_batch
from fewclip.embedding import iter_embed, resolve_workers
from fewclip.heads import make_head
from fewclip.routing import RouteCounts, route


def embed_path(decode: str, ahead: bool):
    """The embed stage's loop (`fewclip.embedding.iter_embed`) with this decoding route and
    with or without the next batch prepared in a background thread."""
    def run(bb, paths: list[str], batch_size: int, workers: int):
        feats, errors, counts = [], [], RouteCounts()
        for f, errs in iter_embed(bb, paths, batch_size, workers, progress=False, decode=decode,
                                  routes=counts, ahead=ahead):
            feats.append(torch.from_numpy(f))
            errors += errs
        return torch.cat(feats), errors, counts
    return run


def timed(path_fn, bb, paths, batch_size, workers):
    """Images per second of a full run after a one-batch warm-up; and the run's output."""
    path_fn(bb, paths[:batch_size], batch_size, workers)
    sync(bb.device)
    start = time.perf_counter()
    out = path_fn(bb, paths, batch_size, workers)
    sync(bb.device)
    return len(paths) / (time.perf_counter() - start), out


def pixel_parity(photos: list[str], device, resolution: int, limit: int = 200) -> str:
    """Mean and max abs difference, in normalised units, of nvJPEG's decode against
    libjpeg's, both through `preprocess_batch`, over GPU-routed photos."""
    datas = [d for d in (Path(p).read_bytes() for p in photos[:limit]) if route(d) == "gpu"]
    diffs = []
    for i in range(0, len(datas), 32):
        chunk = datas[i:i + 32]
        dev = decode_jpegs(chunk, device)
        cpu = [img.to(device) for img in decode_jpegs(chunk, "cpu")]
        ok = [k for k, d in enumerate(dev) if isinstance(d, torch.Tensor)]
        if ok:
            diffs.append((preprocess_batch([dev[k] for k in ok], resolution, MEAN, STD)
                          - preprocess_batch([cpu[k] for k in ok], resolution, MEAN, STD)).abs().flatten(1))
    d = torch.cat(diffs)
    return (f"{device} decode vs libjpeg on {len(d)} photos, normalised units: mean abs {d.mean():.4f}, "
            f"worst photo's mean {d.mean(1).max():.4f}, max {d.max():.3f}")


def producer_breakdown(photos: list[str], device, resolution: int, batch_size: int) -> str:
    """Where the GPU path's preparing of a batch goes, each step alone on one batch of
    GPU-routed photos held in memory: routing (in the workers), nvJPEG decoding, and CLIP's
    preprocessing as tensor ops; images/s of each (on one thread)."""
    datas = [d for d in (Path(p).read_bytes() for p in photos[:4 * batch_size]) if route(d) == "gpu"][:batch_size]
    speeds = {}
    for step, fn in (("route", lambda: [route(d) for d in datas]),
                     ("decode", lambda: decode_jpegs(datas, device)),
                     ("preprocess", lambda: preprocess_batch(decoded, resolution, MEAN, STD))):
        decoded = decode_jpegs(datas, device)
        fn()
        sync(device)
        start, reps = time.perf_counter(), 10
        for _ in range(reps):
            fn()
        sync(device)
        speeds[step] = reps * len(datas) / (time.perf_counter() - start)
    return f"one batch of {len(datas)} photos, each step alone: " + ", ".join(f"{k} {v:.0f} img/s" for k, v in speeds.items())


def corrupt_probe(photo: str, device) -> str:
    """What the device decoder makes of a JPEG with a bad scan (header fine) and of a
    truncated one, decoded alone and inside a batch of good copies."""
    good = Path(photo).read_bytes()
    mid = (good.index(b"\xff\xda") + len(good)) // 2
    bad = good[:mid] + b"\xff\xc0\x00\x11" + good[mid + 4:]
    cut = good[:mid]
    name = lambda out: [o if isinstance(o, str) else "decoded" for o in out]
    return (f"routes: bad scan {route(bad)}, truncated {route(cut)}; {device} decode alone: "
            f"bad scan {name(decode_jpegs([bad], device))[0]}, truncated {name(decode_jpegs([cut], device))[0]}; "
            f"batch [good, bad scan, good, truncated]: {name(decode_jpegs([good, bad, good, cut], device))}")


def head_agreement(photos: list[str], cpu_feats, gpu_feats, ok: list[int]) -> str:
    """A gda head (no text prior: random weights have no meaningful text side) fitted on the
    CPU-path features of every other photo, labelled by its folder; the share of the other
    photos on which it predicts the same class from their GPU-path as from their CPU-path
    features (the issue's target: at least 99%)."""
    labels = [Path(p).parent.name for p in photos]
    classes = sorted(set(labels))
    y = np.array([classes.index(c) for c in labels])
    train, test = [i for i in ok if i % 2 == 0], [i for i in ok if i % 2 == 1]
    if len(classes) < 2 or not train or not test:
        return "-"
    head = make_head("gda", None).fit(cpu_feats[train], y[train], n_classes=len(classes))
    same = head.predict_proba(cpu_feats[test]).argmax(1) == head.predict_proba(gpu_feats[test]).argmax(1)
    return f"{same.mean():.1%} of {len(test)}"


def ray_rows(archs: list[str], paths: list[str], device, batch_size: int, local: dict) -> None:
    """The Ray engine on a new local Ray, per architecture: a warm-up call on one batch
    (starts Ray's workers; each call builds its own actor pool, which loads the backbone),
    then the timed call. `local`: arch -> (CPU-path features, errors) of the local engine."""
    try:
        import ray

        from fewclip.ray_engine import embed_ray
    except ImportError as e:
        print(f"\nRay engine: not measured ({e})")
        return
    start = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    print(f"\nRay {ray.__version__}, a new local Ray: {ray.cluster_resources()}; ray.init {init_s:.1f} s\n")
    print("| model | engine | img/s, whole call | one-batch call s (actor start-up) | img/s net of start-up "
          "| cosine vs local CPU path, mean / min | same errors |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            ckpt = save_state_dict(random_clip(arch), f"{tmp}/{arch.replace('/', '-')}.pt")
            sha = file_sha256(ckpt)
            dev = str(device.type)
            start = time.perf_counter()
            embed_ray(ckpt, sha, paths[:batch_size], device=dev, batch_size=batch_size, progress=False)
            first = time.perf_counter() - start
            start = time.perf_counter()
            feats, errors = embed_ray(ckpt, sha, paths, device=dev, batch_size=batch_size, progress=False)
            seconds = time.perf_counter() - start
            ref_feats, ref_errors = local[arch]
            ok = [i for i, (a, b) in enumerate(zip(errors, ref_errors)) if not a and not b]
            cos = (torch.from_numpy(feats[ok]) * ref_feats[ok]).sum(-1)
            net = len(paths) / (seconds - first) if seconds - first > 0.5 else float("nan")
            print(f"| {arch} | ray, {dev} actors | {len(paths) / seconds:.0f} | {first:.1f} | {net:.0f} "
                  f"| {cos.mean():.5f} / {cos.min():.5f} | {errors == ref_errors} |", flush=True)
    ray.shutdown()


def same_size_noise(cpu_feats, gpu_feats, seed: int = 0):
    """A control for the head agreement: each CPU-path feature moved in a random direction
    by exactly its distance to the GPU-path feature (then renormalised). If the head
    disagrees as often on these, its disagreement measures how close the photos lie to its
    boundaries (random weights put them close together), not a bias of the GPU decoder."""
    g = torch.Generator().manual_seed(seed)
    dist = (gpu_feats - cpu_feats).norm(dim=-1, keepdim=True)
    noise = torch.randn(cpu_feats.shape, generator=g)
    noise -= (noise * cpu_feats).sum(-1, keepdim=True) * cpu_feats  # orthogonal to the feature
    moved = cpu_feats + dist * noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return moved / moved.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of photos (e.g. the vehicles data set)")
    parser.add_argument("--n", type=int, default=5000, help="images per run (the photos repeated)")
    parser.add_argument("--archs", nargs="+", default=["ViT-B/32", "ViT-B/16"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", default="auto", help="DataLoader workers for both paths")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engines", nargs="+", default=["local"], choices=["local", "ray"],
                        help="ray: also the Ray engine (needs the [ray] extra)")
    parser.add_argument("--smoke", action="store_true", help="CPU, 64 images, ViT-B/32, batch 16: does it run?")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.n, args.archs, args.batch_size = "cpu", 64, ["ViT-B/32"], 16
        # the GPU path's code on CPU tensors (as the tests run it): let iter_embed take it
        fewclip.embedding.resolve_decode = lambda setting, device: setting
    device = resolve_device(args.device)
    workers = resolve_workers(args.workers if args.workers == "auto" else int(args.workers), device)
    photos = find_images([args.data], warn=lambda m: print(f"warning: {m}", file=sys.stderr)).paths
    if not photos:
        sys.exit(f"{args.data}: no images")
    paths = (photos * (args.n // len(photos) + 1))[:args.n]
    distinct = min(len(photos), len(paths))
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{len(paths)} images ({distinct} distinct photos from {args.data}); device: {name}; torch "
          f"{torch.__version__}, torchvision {torchvision.__version__}; batch {args.batch_size}, {workers} workers\n")
    print(pixel_parity(photos, device, 224))
    print(corrupt_probe(photos[0], device))
    print(producer_breakdown(photos, device, 224, args.batch_size) + "\n")
    precision = "fp16" if device.type == "cuda" else "fp32"
    print(f"| model | forward img/s ({precision}, bs {args.batch_size}) | CPU-decode img/s | ratio "
          "| GPU-decode img/s, no prefetch | ratio | GPU-decode img/s | ratio | GPU-path routes "
          "| cosine GPU vs CPU path, mean / min | head agrees | control: same-size noise | mean cosine between photos |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    local = {}
    for arch in args.archs:
        bb = backbone(arch, device)
        forward = bare_forward(bb, paths, args.batch_size)
        cpu_speed, (cpu_feats, cpu_errors, _) = timed(embed_path("cpu", True), bb, paths, args.batch_size, workers)
        serial_speed, _ = timed(embed_path("gpu", False), bb, paths, args.batch_size, workers)
        gpu_speed, (gpu_feats, gpu_errors, counts) = timed(embed_path("gpu", True), bb, paths, args.batch_size,
                                                           workers)
        ok = [i for i in range(distinct) if not cpu_errors[i] and not gpu_errors[i]]
        cos = (cpu_feats[ok] * gpu_feats[ok]).sum(-1)
        errors_differ = sum(a != b for a, b in zip(cpu_errors, gpu_errors))
        agree = head_agreement(photos[:distinct], cpu_feats[:distinct], gpu_feats[:distinct], ok)
        noisy = same_size_noise(cpu_feats[:distinct], gpu_feats[:distinct])
        control = head_agreement(photos[:distinct], cpu_feats[:distinct], noisy, ok)
        f = cpu_feats[ok]
        between = ((f @ f.T).sum() - len(ok)) / (len(ok) * (len(ok) - 1))
        print(f"| {arch} | {forward:.0f} | {cpu_speed:.0f} | {cpu_speed / forward:.2f} | {serial_speed:.0f} "
              f"| {serial_speed / forward:.2f} | {gpu_speed:.0f} | {gpu_speed / forward:.2f} | {counts.describe()} "
              f"| {cos.mean():.5f} / {cos.min():.5f} | {agree} | {control} | {between:.4f} |", flush=True)
        if errors_differ:
            print(f"  {errors_differ} images with different errors on the two paths")
        local[arch] = (cpu_feats, cpu_errors)
        del bb
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if "ray" in args.engines:
        ray_rows(args.archs, paths, device, args.batch_size, local)


if __name__ == "__main__":
    main()
