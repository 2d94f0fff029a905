"""What the feature cache saves: `dvc repro` timings and the original project's cost.

In a temporary copy of the repository, with the reference images and random weights of a
full CLIP architecture (speed does not depend on the values), runs and times:
  1. `dvc repro` from scratch, with an empty feature cache and fit cache;
  2. `dvc repro` again with nothing changed (nothing should run);
  3. `dvc repro` after adding 5 new training photos (mirror images of existing ones):
     split, embed, train, evaluate and shots rerun, but only the 5 images are embedded, and
     the shots stage fits again only the draws that the new photos enter, and "all".
Then compares one cached embedding pass with the original project's approach, which ran the
backbone on every training and validation image in every epoch (about 100) and once more on
the test images: the ratio of backbone forwards, and of time at the measured throughput.

    python benchmarks/pipeline_cost.py --data ../shared/datasets/vehicles --arch ViT-B/32
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

from fewclip.data import scan_folder
from random_checkpoint import random_clip, save_state_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import copy_repo, set_params  # noqa: E402  (the tests' copy of the repository, reused)


def sh(*cmd, cwd) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout


def stage_times(stdout: str) -> list[tuple[str, float]]:
    """Seconds per stage, from the stages' own closing lines where they print one."""
    found = []
    for stage, pattern in (("embed", r"^embed: done in ([\d.]+)s"), ("shots", r"^shots: \d+ fits in ([\d.]+)s")):
        m = re.search(pattern, stdout, re.M)
        if m:
            found.append((stage, float(m.group(1))))
    return found


def shots_line(stdout: str) -> str:
    """How many fits the shots stage took from its fit cache and how many it fitted."""
    m = re.search(r"^shots: \d+ fits in [\d.]+s \((.*?)\) ->", stdout, re.M)
    return m.group(1) if m else "-"


def stages_run(stdout: str) -> list[str]:
    return [line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage '")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the reference data folder")
    parser.add_argument("--arch", default="ViT-B/32")
    parser.add_argument("--epochs", type=int, default=100, help="the original project's epochs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository (e.g. its features/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another param value for all three runs, e.g. shots.seeds=2 (YAML value)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fewclip-cost-"))
    repo = work / "repo"
    repo.mkdir()
    copy_repo(repo)
    shutil.copytree(args.data, repo / "data", symlinks=True)
    checkpoint = save_state_dict(random_clip(args.arch), work / f"random-{args.arch.replace('/', '-')}.pt")
    other = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    set_params(repo, model=checkpoint, **{"embed.feature_cache": str(work / "feature-cache"),
                                          "shots.fit_cache": str(work / "fit-cache"), **other})
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "bench", cwd=repo)

    rows = []
    t, out = sh("dvc", "repro", cwd=repo)
    summary = json.loads((repo / "features" / "summary.json").read_text())
    embed_line = next(line for line in out.splitlines() if line.startswith("embed: done in "))
    rows.append(("first `dvc repro`, empty caches", t, stages_run(out), summary["cache"],
                 float(embed_line.split()[3].rstrip("s"))))
    t, out = sh("dvc", "repro", cwd=repo)
    rows.append(("second `dvc repro`, nothing changed", t, stages_run(out), None, None))
    train = scan_folder(repo / "data" / "few_shot" / "train")
    cls = train.classes[0]
    photos = [path for path, label in train.samples if label == cls][:5]
    for i, p in enumerate(photos):
        Image.open(p).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(train.root / cls / f"added-{i}.jpg")
    t, out = sh("dvc", "repro", cwd=repo)
    after = json.loads((repo / "features" / "summary.json").read_text())
    rows.append(("`dvc repro` after adding 5 photos", t, stages_run(out), after["cache"], None))

    print(f"{args.arch}, random weights, {sum(summary['images'].values())} images, {repo}"
          + "".join(f"; {k}={v}" for k, v in other.items()))
    print("| run | wall time | share of the first | stages run | images embedded / from cache |")
    print("|---|---|---|---|---|")
    for what, t, ran, cache, _ in rows:
        counts = "-" if cache is None else (f"{sum(c['embedded'] for c in cache.values())} / "
                                            f"{sum(c['cached'] for c in cache.values())}")
        print(f"| {what} | {t:.1f} s | {t / rows[0][1]:.2f} | {', '.join(ran) or 'none'} | {counts} |")
    print("\nstage times after adding 5 photos: " + ", ".join(f"{s} {t:.1f} s" for s, t in stage_times(out))
          + f"; shots: {shots_line(out)}")

    n = summary["images"]
    trainval, total = n["train"] + n["val"], sum(n.values())
    original = args.epochs * trainval + n["test"] + n["zero_shot"]
    embed_s = rows[0][4]
    print(f"\nbackbone forwards: original approach {args.epochs} epochs x {trainval} train+val images "
          f"+ {n['test'] + n['zero_shot']} test = {original}; cached: {total} once; "
          f"ratio {original / total:.0f}x")
    print(f"time at this machine's end-to-end embedding rate ({total / embed_s:.1f} images/s, the first "
          f"embed stage): original about {original * embed_s / total / 60:.0f} min of embedding, "
          f"cached {embed_s:.0f} s once, then {rows[2][1]:.0f} s for the whole `dvc repro` after adding 5 photos")
    if args.keep:
        print(f"kept: {repo}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
