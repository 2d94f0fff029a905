"""The README's sweep, timed: a queued grid of experiments, run with `dvc queue start`.

In a temporary copy of the repository, with the reference images and random weights of the
full ViT-B/32 and ViT-B/16 architectures (for speed; accuracy is then chance), queues

    dvc exp run --queue -S model=<B/32>,<B/16> -S mode=few,zero -S head=gda,mlp \\
                        -S heads.mlp.sampler=weighted,uniform

runs the queue with `--jobs` workers, and prints the wall time, how many images went through
a backbone in all (the per-image feature cache is shared by every experiment), how many
experiments ran, and the README's comparison table.

    python benchmarks/sweep.py --data ../shared/datasets/vehicles [--jobs 1]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from random_checkpoint import random_clip, save_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import copy_repo, env, set_params  # noqa: E402

COMPARE = ["dvc", "exp", "show", "--only-changed", "--sort-by", "test.acc", "--sort-order", "desc", "--drop",
           r"Created|State|Executor|.*/.*|features|splits|curve\..*|gzsl\.(seen|novel)|test\.balanced_acc",
           "--no-pager"]


def sh(*cmd, cwd, extra_env=None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**env(), **(extra_env or {})})
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--jobs", type=int, default=1, help="queue workers (`dvc queue start --jobs`)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sw-"))  # short: the model column shows the checkpoint paths
    repo = work / "repo"
    repo.mkdir()
    copy_repo(repo)
    shutil.copytree(args.data, repo / "data", symlinks=True)
    models = [save_state_dict(random_clip(a), work / f"b{a[-2:]}.pt") for a in ("ViT-B/32", "ViT-B/16")]
    cache = work / "feature-cache"
    set_params(repo, **{"embed.feature_cache": str(cache), "shots.fit_cache": str(work / "fit-cache")})
    sh("dvc", "add", "data", cwd=repo)
    set_params(repo, model=models[0])
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "setup", cwd=repo)  # dvclive needs a commit to start from
    baseline = time.perf_counter()
    sh("dvc", "repro", cwd=repo)  # the baseline a user has run (`make run`) before sweeping
    baseline = time.perf_counter() - baseline
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "sweep", cwd=repo)
    print(f"baseline `dvc repro` (ViT-B/32, fills the feature cache with its images): {baseline:.0f} s")

    start = time.perf_counter()
    sh("dvc", "exp", "run", "--queue", "-S", f"model={models[0]},{models[1]}", "-S", "mode=few,zero",
       "-S", "head=gda,mlp", "-S", "heads.mlp.sampler=weighted,uniform", cwd=repo)
    sh("dvc", "queue", "start", "--jobs", str(args.jobs), cwd=repo)
    while True:
        status = sh("dvc", "queue", "status", cwd=repo)
        if not any(w in status for w in ("Queued", "Running")):
            break
        time.sleep(2)
    seconds = time.perf_counter() - start
    tasks = [line.split() for line in status.splitlines() if line.rstrip().endswith(("Success", "Failed"))]
    embedded = loaded = 0
    for task in tasks:
        log = sh("dvc", "queue", "logs", task[1], cwd=repo)
        embedded += sum(int(m) for m in re.findall(r"^embed: \w+: \d+ images \((\d+) embedded", log, re.M))
        loaded += len(re.findall(r"^embed: done in .* loaded in", log, re.M))
        if task[-1] == "Failed":
            print(f"{task[1]} failed:\n{log[-2000:]}")
    print(f"sweep of {len(tasks)} experiments ({sum(t[-1] == 'Failed' for t in tasks)} failed) with "
          f"{args.jobs} worker(s): {seconds:.0f} s wall")
    print(f"images run through a backbone in all: {embedded}; backbone loaded by {loaded} embed stage(s)")
    columns = subprocess.run(COMPARE, cwd=repo, capture_output=True, text=True, env={**env(), "COLUMNS": "120"}).stdout
    print("$ COLUMNS=120 " + " ".join(COMPARE))
    print(columns)
    csv = sh("dvc", "exp", "show", "--only-changed", "--csv", cwd=repo).splitlines()
    print(f"`dvc exp show --only-changed --csv`: {len(csv[0].split(','))} columns; "
          f"`dvc exp show --csv`: {len(sh('dvc', 'exp', 'show', '--csv', cwd=repo).splitlines()[0].split(','))}")
    print(f"repository: {repo}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
