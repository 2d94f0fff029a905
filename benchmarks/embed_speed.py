"""Embedding throughput: the embed stage's own code end to end against the bare model forward.

For each architecture (random weights of the full published architecture: speed does not
depend on the values), batch size and number of decoding workers, prints images per second
of `fewclip.embedding.embed_images` (read, decode, preprocess, forward) and of the bare
`encode_image` forward on ready tensors of the same batch size, their ratio, and peak memory.
Runs on CUDA (fp16, as OpenAI's weights are) when a GPU is present, else on the CPU (fp32).

    python benchmarks/embed_speed.py --archs ViT-B/32 ViT-B/16 --batch-sizes 64 --workers 0 2
"""

import argparse
import json
import resource
import sys
import time
import warnings

import torch

from fewclip.backbone import Backbone, resolve_device
from fewclip.backbone.openai import OpenAIClip
from fewclip.data import scan_folder
from fewclip.pixels import load_rgb
from fewclip.embedding import embed_images
from random_checkpoint import random_clip

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.model import convert_weights


def backbone(arch: str, device: torch.device) -> Backbone:
    model = random_clip(arch).to(device)
    if device.type == "cuda":
        convert_weights(model)
    model.eval().requires_grad_(False)
    return OpenAIClip(model, arch, "random", device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward(bb: Backbone, paths: list[str], batch_size: int) -> float:
    """Images per second of the forward alone, on preprocessed tensors already in memory."""
    batch = torch.stack([bb.preprocess(load_rgb(p)) for p in paths[:batch_size]])
    while len(batch) < batch_size:
        batch = torch.cat([batch, batch])[:batch_size]
    batch = batch.to(bb.device)
    bb.encode_images(batch)  # warm-up
    sync(bb.device)
    n_batches = max(1, len(paths) // batch_size)
    start = time.perf_counter()
    for _ in range(n_batches):
        bb.encode_images(batch)
    sync(bb.device)
    return n_batches * batch_size / (time.perf_counter() - start)


def end_to_end(bb: Backbone, paths: list[str], batch_size: int, workers: int) -> float:
    embed_images(bb, paths[:batch_size], batch_size, workers, progress=False)  # warm-up (and worker start-up cost once)
    sync(bb.device)
    start = time.perf_counter()
    _, errors = embed_images(bb, paths, batch_size, workers, progress=False)
    sync(bb.device)
    assert not any(errors), [e for e in errors if e][:3]
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["data/few_shot/train", "data/few_shot/test", "data/zero_shot/test"],
                        help="folders of class folders")
    parser.add_argument("--archs", nargs="+", default=["ViT-B/32", "ViT-B/16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    paths = [p for root in args.data for p, _ in scan_folder(root).samples]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{len(paths)} images from {', '.join(args.data)}; device: {name}; torch {torch.__version__}")
    print(f"{'arch':<9} {'batch':>5} {'workers':>7} {'end-to-end img/s':>17} {'forward img/s':>14} {'ratio':>6} {'peak RSS GB':>12}"
          + (f" {'peak GPU GB':>11}" if device.type == "cuda" else ""))
    rows = []
    for arch in args.archs:
        bb = backbone(arch, device)
        for bs in args.batch_sizes:
            fwd = bare_forward(bb, paths, bs)
            for w in args.workers:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                e2e = end_to_end(bb, paths, bs, w)
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
                row = {"arch": arch, "batch": bs, "workers": w, "end_to_end": e2e, "forward": fwd,
                       "ratio": e2e / fwd, "peak_rss_gb": rss, "device": name}
                if device.type == "cuda":
                    row["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
                rows.append(row)
                print(f"{arch:<9} {bs:>5} {w:>7} {e2e:>17.1f} {fwd:>14.1f} {e2e / fwd:>6.2f} {rss:>12.2f}"
                      + (f" {row['peak_gpu_gb']:>11.2f}" if device.type == "cuda" else ""), flush=True)
        del bb
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
