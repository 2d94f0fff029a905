"""How fast the shots stage is, alone and beside another CPU-bound torch process.

The shots stage fits every head of `shots.heads` at every shot count over several seeds on
cached features: many small fits. This script times the stage's own command on a features
folder (the embed stage's output, e.g. of the reference data):

  1. alone;
  2. while another process runs torch matrix products on all cores (a training job, say);

and, to show why the stage limits itself to one thread, the same curve computed in-process
with torch and BLAS at their default thread counts and at one thread, alone and loaded.

    python benchmarks/shots_speed.py --features features    # after `dvc repro embed`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUSY = """
import torch
a = torch.randn(1500, 1500)
while True:
    a = (a @ a).clamp_(-1, 1)
"""


@contextmanager
def busy_machine(load: bool):
    """Another CPU-bound torch process (default threads: all cores) while the block runs."""
    if not load:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    time.sleep(2)  # let it start its threads
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def time_stage(features: Path, load: bool) -> tuple[float, str]:
    """The stage's own command, with the project's params.yaml except the fit cache: off, so
    that every run fits every head."""
    out = Path(tempfile.mkdtemp(prefix="shots-speed-"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["shots"]["fit_cache"] = None
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    with busy_machine(load):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "stages" / "shots.py"), str(features), str(out / "m"),
                               str(out / "shots.png")], cwd=out, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(proc.stderr)
    return seconds, proc.stdout.strip().splitlines()[-1]


def time_in_process(features: Path, threads: int | None, load: bool) -> float:
    """The same curve computed here, with torch and BLAS at `threads` (None: their defaults)."""
    code = f"""
import sys, time, torch, numpy as np
from threadpoolctl import threadpool_limits
sys.path.insert(0, {str(ROOT)!r})
from fewclip.features import load_features
from fewclip.pipeline.params import load_params
from fewclip.shots import shots_curve
p = load_params({str(ROOT / 'params.yaml')!r}); cfg = p["shots"]
sets = [load_features({str(features)!r} + f"/{{s}}.npz") for s in ("train", "val", "test")]
with np.load({str(features)!r} + "/text.npz") as z:
    text, scale = z["features"][:len(sets[0].classes)], float(z["logit_scale"])
threads = {threads!r}
if threads:
    torch.set_num_threads(threads)
else:  # the libraries' own thread counts: without the curve's one-thread policy
    import contextlib, fewclip.shots
    fewclip.shots.one_thread = lambda imports=(): contextlib.nullcontext()
limits = threadpool_limits(threads) if threads else None
start = time.perf_counter()
shots_curve(*sets, text, scale, cfg["heads"], p["heads"],
            cfg["ks"], cfg["seeds"], cfg["val_per_class"])
print(time.perf_counter() - start)
"""
    env = {**os.environ}
    with busy_machine(load):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(proc.stderr)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, default=ROOT / "features")
    ap.add_argument("--skip-threads", action="store_true", help="only time the stage itself")
    args = ap.parse_args()
    features = args.features.resolve()
    print(f"{os.cpu_count()} cores; features {features}")
    alone, line = time_stage(features, load=False)
    loaded, _ = time_stage(features, load=True)
    print("| shots stage (stages/shots.py) | alone | beside a busy torch process | ratio |")
    print("|---|---|---|---|")
    print(f"| as shipped | {alone:.1f} s | {loaded:.1f} s | {loaded / alone:.2f} |")
    print(f"stage's closing line: {line}")
    if args.skip_threads:
        return
    print("\n| curve in-process | alone | beside a busy torch process | ratio |")
    print("|---|---|---|---|")
    for threads in (None, 1):
        a = time_in_process(features, threads, load=False)
        b = time_in_process(features, threads, load=True)
        print(f"| torch/BLAS threads: {threads or 'default (' + str(os.cpu_count()) + ')'} | {a:.1f} s | "
              f"{b:.1f} s | {b / a:.2f} |")


if __name__ == "__main__":
    main()
