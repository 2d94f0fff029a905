"""The CI smoke run: the whole pipeline, for real, on the CPU, in a few minutes, offline.

    python ci/smoke.py [--checkpoint FILE] [--out DIR] [--summary FILE] [--keep DIR]

A copy of this repository's files (what git tracks, plus what it does not ignore) in a
temporary folder, with a tiny synthetic data set (coloured shapes: 6 classes of 12 training
and 6 test photos, one novel class) and a tiny CLIP (`tests/synthetic.py`: OpenAI's CLIP
class, small, trained for about a minute here unless `--checkpoint` names one), goes through
`dvc add data` and `dvc repro`; a second `dvc repro` must run nothing. Then the headline
figures (`dvc metrics diff --md`: this run against nothing, so every figure is new) and the
list of plots go to `--summary` (in GitHub Actions: `$GITHUB_STEP_SUMMARY`), and the plots
to `--out/plots`. It needs no CLIP weights and no network. Exits non-zero, saying which step
failed, when any step fails. `.github/workflows/ci.yaml` runs it; so does the test suite
(tests/test_ci.py).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' synthetic world and repository helpers

# The tests' world: one class is named with a word the tiny CLIP never saw ("crimson"), so
# zero-shot gets it wrong and a few shots repair it, as with a name real CLIP knows poorly.
CLASSES = {"crimson_circle": "red circle", "green_square": "green square", "blue_triangle": "blue triangle",
           "yellow_cross": "yellow cross", "purple_circle": "purple circle", "orange_square": "orange square"}
NOVEL = {"blue_circle": "blue circle"}
# small and quick: every stage runs, nothing runs long
PARAMS = {"head": "mlp", "heads.mlp.epochs": 40, "embed.num_workers": 0, "shots.ks": [1, 4, "all"], "shots.seeds": 2,
          "shots.heads": ["gda", "mlp", "ncm"],
          "classes.novel": list(NOVEL), "classes.prompts": {"blue_circle": ["blue circle", "blue disc"]}}


def step(what: str, *cmd, cwd: Path) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"smoke: {what} failed ({' '.join(map(str, cmd))}, exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="a CLIP checkpoint (default: train the tiny CLIP, about a minute)")
    ap.add_argument("--out", default="smoke", help="where the plots are copied to")
    ap.add_argument("--summary", help="a Markdown file the figures are appended to ($GITHUB_STEP_SUMMARY)")
    ap.add_argument("--keep", help="copy the smoke repository here afterwards, to look at it")
    args = ap.parse_args(argv)

    import synthetic
    from helpers import copy_repo, set_params

    with tempfile.TemporaryDirectory(prefix="fewclip-smoke-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        copy_repo(repo)
        checkpoint = Path(args.checkpoint).resolve() if args.checkpoint else None
        if checkpoint is None:
            print("smoke: training the tiny CLIP (about a minute)", flush=True)
            checkpoint = synthetic.save_checkpoint(synthetic.train_tiny_clip(steps=300, seed=0),
                                                   Path(tmp) / "tiny-clip.pt", torchscript=True)
        data = repo / "data"
        shutil.rmtree(data, ignore_errors=True)
        synthetic.write_image_folder(data / "few_shot" / "train", CLASSES, 12, seed=1)
        synthetic.write_image_folder(data / "few_shot" / "test", CLASSES, 6, seed=2)
        synthetic.write_image_folder(data / "zero_shot" / "test", NOVEL, 6, seed=3)
        set_params(repo, **PARAMS, model=str(checkpoint), **{"embed.feature_cache": str(Path(tmp) / "features-cache"),
                                                             "shots.fit_cache": str(Path(tmp) / "fit-cache")})
        step("dvc add", "dvc", "add", "-q", "data", cwd=repo)
        step("git commit", "git", "add", "-A", cwd=repo)
        step("git commit", "git", "commit", "-qm", "smoke data", cwd=repo)
        first = step("dvc repro", "dvc", "repro", cwd=repo)
        again = step("the second dvc repro", "dvc", "repro", cwd=repo)
        if "Running stage" in again:
            sys.exit(f"smoke: a second `dvc repro` with nothing changed ran stages:\n{again}")
        figures = step("dvc metrics diff", "dvc", "metrics", "diff", "--md", "--all", cwd=repo)
        plots = Path(args.out) / "plots"
        shutil.rmtree(plots, ignore_errors=True)
        shutil.copytree(repo / "plots", plots, ignore=shutil.ignore_patterns("README.md", ".gitignore"))
        if args.keep:
            shutil.copytree(repo, args.keep, symlinks=True, dirs_exist_ok=True)
    stages = sorted({line.split("'")[1] for line in first.splitlines() if line.startswith("Running stage '")})
    report = ("## Smoke run: the pipeline on a tiny synthetic data set\n\n"
              f"Stages run: {', '.join(stages)}; a second `dvc repro` ran nothing.\n\n{figures.strip()}\n\n"
              f"Plots (the job's artifact): {', '.join(sorted(p.name for p in plots.iterdir()))}\n")
    print(report)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
