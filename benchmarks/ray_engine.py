"""The local engine (`fewclip.embedding.embed_images`) against the Ray engine
(`fewclip.ray_engine.embed_ray`) on this machine: images/s, Ray's fixed start-up cost, and
the driver's peak memory at several numbers of images.

Run by hand from the repository root (not in CI):

    python benchmarks/ray_engine.py                          # 2,000 and 20,000 images
    python benchmarks/ray_engine.py --sizes 500 5000 --json /tmp/ray_engine.json

World: the tiny CLIP of the tests (`tests/synthetic.py`: a 2-layer ViT on 32x32 images)
with random weights (speed and memory do not depend on the values), saved as a checkpoint
file, and max(--sizes) distinct synthetic JPEGs (32, 48 or 64 pixels a side) written to a
temporary folder; each run embeds the first n of them. With such a small model the figures
measure the engines' overheads (reading, decoding, scheduling, transfers), not the forward.

Each (engine, n) runs in a fresh Python process, so that its peak memory is its own:
  peak RSS    the driver process's resident-set high-water mark over its whole life:
              VmHWM of /proc/self/status before the timed call, and again after it (Linux).
              Not `getrusage(RUSAGE_SELF).ru_maxrss`: after fork + exec that keeps the
              parent's high-water mark (here the parent holds torch and drew the images).
              Ray's own processes (GCS, raylet, the actors) are not the driver and are not
              counted.
  run growth  the driver's peak RSS during the timed call minus its RSS just before it
              (after imports, `ray.init` and the warm-up call): `/proc/self/status` VmHWM
              after the call, reset before it (`echo 5 > /proc/self/clear_refs`), minus VmRSS.
  local       `load_backbone` then `embed_images(paths[:n], batch_size)`; images/s over
              the `embed_images` call.
  ray         `ray.init()` (a new local Ray: all cores), then `embed_ray` on one image
              (start-up: a new actor pool, the actor imports torch and loads the backbone),
              then the timed `embed_ray(paths[:n])`. Each call builds its own actor pool, so
              the timed call pays the actor start-up again: images/s is given over the whole
              call and net of the one-image call's time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_world(folder: Path, n: int) -> tuple[str, list[str]]:
    sys.path.insert(0, str(ROOT / "tests"))
    import synthetic  # the tests' helper module
    import torch

    torch.manual_seed(0)
    ckpt = synthetic.save_checkpoint(synthetic.tiny_clip(), folder / "tiny-clip.pt")
    rng = random.Random(0)
    classes = synthetic.all_classes()
    paths = []
    for i in range(n):
        path = folder / "images" / f"{i // 1000:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic.render(classes[i % len(classes)], rng, size=rng.choice((32, 48, 64))).save(path, quality=95)
        paths.append(str(path))
    return str(ckpt), paths


def _vm(field: str) -> int:
    """KiB of a /proc/self/status field (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Start a new VmHWM (peak RSS) measurement for this process (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def child(engine: str, n: int, ckpt: str, list_file: str, batch_size: int) -> dict:
    """One measurement, in this (fresh) process."""
    paths = Path(list_file).read_text().splitlines()[:n]
    from fewclip.cache import (
        file_sha256,  # the backbone's sha, without importing torch here
    )

    sha = file_sha256(ckpt)
    row = {"engine": engine, "n": n}
    if engine == "local":
        from fewclip.backbone import load_backbone
        from fewclip.embedding import embed_images

        backbone = load_backbone(ckpt, "cpu", None, sha)
        peak_before = _vm("VmHWM")
        reset_peak()
        before = _vm("VmRSS")
        start = time.perf_counter()
        feats, errors = embed_images(backbone, paths, batch_size=batch_size, progress=False)
        row["seconds"] = time.perf_counter() - start
        row["images_per_s"] = n / row["seconds"]
    else:
        import ray

        from fewclip.ray_engine import embed_ray

        start = time.perf_counter()
        ray.init()
        row["init_s"] = time.perf_counter() - start
        start = time.perf_counter()
        embed_ray(ckpt, sha, paths[:1], device="cpu", batch_size=batch_size, progress=False)
        row["first_actor_s"] = time.perf_counter() - start
        row["startup_s"] = row["init_s"] + row["first_actor_s"]
        peak_before = _vm("VmHWM")
        reset_peak()
        before = _vm("VmRSS")
        start = time.perf_counter()
        feats, errors = embed_ray(ckpt, sha, paths, device="cpu", batch_size=batch_size, progress=False)
        row["seconds"] = time.perf_counter() - start
        row["images_per_s"] = n / row["seconds"]
        net = row["seconds"] - row["first_actor_s"]  # too short to tell below a second
        row["net_images_per_s"] = n / net if net >= 1.0 else None
        ray.shutdown()
    assert feats.shape[0] == n and not any(errors), [e for e in errors if e][:3]
    run_peak = _vm("VmHWM")
    row["peak_rss_mib"] = max(peak_before, run_peak) / 1024
    row["run_growth_mib"] = (run_peak - before) / 1024
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[2000, 20000])
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "N", "CKPT", "LIST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, n, ckpt, list_file = args.child
        print(json.dumps(child(engine, int(n), ckpt, list_file, args.batch_size)))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="ray-engine-bench-") as tmp:
        start = time.perf_counter()
        ckpt, paths = make_world(Path(tmp), max(args.sizes))
        list_file = Path(tmp) / "paths.txt"
        list_file.write_text("\n".join(paths))
        print(f"wrote {len(paths)} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        for n in args.sizes:
            for engine in args.engines:
                proc = subprocess.run([sys.executable, __file__, "--batch-size", str(args.batch_size),
                                       "--child", engine, str(n), ckpt, str(list_file)],
                                      capture_output=True, text=True, cwd=ROOT, check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{engine} n={n} failed:\n{proc.stderr[-3000:]}")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"{engine} n={n}: {rows[-1]}", file=sys.stderr)

    print(f"\ncores: {os.cpu_count()}, batch size {args.batch_size}, tiny CLIP (random weights), "
          "peak RSS = the driver's VmHWM\n")
    print("| engine | images | seconds | images/s | images/s net of start-up | Ray start-up s (init + first actor) "
          "| driver peak RSS MiB | growth during run MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        startup = f"{r['startup_s']:.1f} ({r['init_s']:.1f} + {r['first_actor_s']:.1f})" if "startup_s" in r else "-"
        net = f"{r['net_images_per_s']:.0f}" if r.get("net_images_per_s") else "-"
        print(f"| {r['engine']} | {r['n']:,} | {r['seconds']:.1f} | {r['images_per_s']:.0f} | {net} | {startup} "
              f"| {r['peak_rss_mib']:.0f} | {r['run_growth_mib']:.1f} |")
    for engine in args.engines:
        mine = sorted((r for r in rows if r["engine"] == engine), key=lambda r: r["n"])
        if len(mine) > 1:
            ratio = mine[-1]["peak_rss_mib"] / mine[0]["peak_rss_mib"]
            print(f"\n{engine}: peak RSS at {mine[-1]['n']:,} images = {ratio:.3f} x the peak at "
                  f"{mine[0]['n']:,} ({(ratio - 1) * 100:+.1f}%; target for ray: within +10%)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
