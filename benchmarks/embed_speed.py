"""Embedding throughput: the embed stage's own code end to end against the bare model forward.

For each architecture (random weights of the full published architecture: speed does not
depend on the values), precision (`embed.precision`), batch size and number of decoding
workers, prints images per second of `fewclip.embedding.embed_images` (read, decode,
preprocess, forward) and of the bare `encode_image` forward on ready tensors of the same
batch size, their ratio, peak memory, and for each precision but fp32 the speed-up of the
end-to-end rate over fp32's and the features' cosine to fp32's (mean, min) on every photo.
Runs on CUDA when a GPU is present, else on the CPU; the precisions default to fp32 and
what `auto` is on that device (fp16 on CUDA, bf16 on a CPU with AVX512_BF16 or AMX).

    python benchmarks/embed_speed.py --archs ViT-B/32 ViT-B/16 --batch-sizes 32 --workers 0
"""

import argparse
import copy
import json
import resource
import sys
import time
import warnings

import torch

import numpy as np

from fewclip.backbone import Backbone, resolve_device, resolve_precision
from fewclip.backbone.openai import OpenAIClip
from fewclip.data import scan_folder
from fewclip.pixels import load_rgb
from fewclip.embedding import embed_images
from random_checkpoint import random_clip

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.model import convert_weights


def backbone(model, arch: str, device: torch.device, precision: str) -> Backbone:
    """`model` (fp32 weights) at `precision`: fp16 converts the weights as `clip` does."""
    if precision == "fp16":
        model = copy.deepcopy(model)
        convert_weights(model)
    return OpenAIClip(model.eval().requires_grad_(False), arch, "random", device, precision)


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


def end_to_end(bb: Backbone, paths: list[str], batch_size: int, workers: int):
    """(images per second, the features)."""
    embed_images(bb, paths[:batch_size], batch_size, workers, progress=False)  # warm-up (and worker start-up cost once)
    sync(bb.device)
    start = time.perf_counter()
    feats, errors = embed_images(bb, paths, batch_size, workers, progress=False)
    sync(bb.device)
    assert not any(errors), [e for e in errors if e][:3]
    return len(paths) / (time.perf_counter() - start), feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["data/few_shot/train", "data/few_shot/test", "data/zero_shot/test"],
                        help="folders of class folders")
    parser.add_argument("--archs", nargs="+", default=["ViT-B/32", "ViT-B/16"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", help="default: fp32 and auto's choice on the device")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    paths = [p for root in args.data for p, _ in scan_folder(root).samples]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{len(paths)} images from {', '.join(args.data)}; device: {name}; torch {torch.__version__}")
    precisions = args.precisions or list(dict.fromkeys(["fp32", resolve_precision("auto", device)]))
    precisions = sorted(precisions, key=lambda p: p != "fp32")  # fp32 first: the reference
    print(f"{'arch':<9} {'prec':>4} {'batch':>5} {'workers':>7} {'end-to-end img/s':>17} {'forward img/s':>14} "
          f"{'ratio':>6} {'vs fp32':>7} {'cos mean':>8} {'cos min':>8} {'peak RSS GB':>12}"
          + (f" {'peak GPU GB':>11}" if device.type == "cuda" else ""))
    rows = []
    for arch in args.archs:
        model = random_clip(arch).to(device)
        for bs in args.batch_sizes:
            for w in args.workers:
                reference = None
                for precision in precisions:
                    bb = backbone(model, arch, device, resolve_precision(precision, device))
                    fwd = bare_forward(bb, paths, bs)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    e2e, feats = end_to_end(bb, paths, bs, w)
                    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
                    row = {"arch": arch, "precision": bb.precision, "batch": bs, "workers": w, "end_to_end": e2e,
                           "forward": fwd, "ratio": e2e / fwd, "peak_rss_gb": rss, "device": name}
                    if reference is None and bb.precision == "fp32":
                        reference = (e2e, feats)
                    if reference is not None and bb.precision != "fp32":
                        cos = (feats.astype(np.float64) * reference[1]).sum(1)
                        row.update(speedup=e2e / reference[0], cos_mean=float(cos.mean()), cos_min=float(cos.min()))
                    if device.type == "cuda":
                        row["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
                    rows.append(row)
                    extra = (f"{row['speedup']:>7.2f} {row['cos_mean']:>8.5f} {row['cos_min']:>8.5f}" if "speedup" in row
                             else f"{'':>7} {'':>8} {'':>8}")
                    print(f"{arch:<9} {bb.precision:>4} {bs:>5} {w:>7} {e2e:>17.1f} {fwd:>14.1f} {e2e / fwd:>6.2f} "
                          f"{extra} {rss:>12.2f}"
                          + (f" {row['peak_gpu_gb']:>11.2f}" if device.type == "cuda" else ""), flush=True)
                    del bb
        del model
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
