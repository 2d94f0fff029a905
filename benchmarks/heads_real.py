"""Every head on real CLIP features: data set x shots x head, mean ± std over seeds, seconds to fit.

Run by hand (not in CI):

    python benchmarks/heads_real.py ../shared/datasets/clip-features            # the shared files
    python benchmarks/heads_real.py features                                    # the embed stage's output
    python benchmarks/heads_real.py DIR --heads gda tip-adapter --sets imagenet pets-24

Reads either layout:
  * the shared CLIP ViT-B/32 feature files (`vitb32_<set>.npz` with `train{K}_x/_y`, `val_*`,
    `test_*`; `imagenet_text_weights.npz`; `oxford_pets_to_imagenet.json`), see that folder's
    README; or
  * the project's own feature folder (`train.npz`, `val.npz`, `test.npz`, `text.npz` written
    by the embed stage), as one set named `mine`: K-shot training sets are drawn from `train.npz`
    (seed 0, one draw per K) and `all` uses it whole.

Protocol: hyper-parameters are chosen on each set's validation split only (heads get it as
`X_val`); test features are used once per fit, for the reported number. ImageNet has no
validation or test split here: test = the 4-shot set minus its near-duplicates (cosine >= 0.95)
of the 1- and 2-shot sets (3976 images); a head trained on the 1-shot set validates on the
2-shot set and vice versa, minus near-duplicates of its training images. Oxford Pets runs whole
(37 classes, no text) and as `pets-24`, the 24 classes with an ImageNet class name, with and
without the text prior. Heads with randomness (`stochastic`) run over `--seeds` seeds; the
K-shot sets themselves are fixed draws.

Baselines in the same table: `zero-shot` (where there are text features), `ncm` (nearest class
mean) and `linear` (scikit-learn's LogisticRegression, C chosen on validation).

Writes <out>/heads_real.json (every fit), <out>/heads_real.md (the table) and
<out>/heads_real.png (accuracy versus shots, one panel per set).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fewclip.features import load_features
from fewclip.heads import HEADS, ZeroShotHead, make_head
from fewclip.pipeline.params import load_params
from fewclip.plots import shots_grid_png
from fewclip.shots import draw_shots, summarize

NO_TEXT_SETS = ("caltech101", "oxford_flowers", "oxford_pets", "ucf101", "fgvc", "dtd")
DUPLICATE_COSINE = 0.95


@dataclass
class Task:
    """One benchmark: K-shot training sets, each with its own validation split, one test split."""

    name: str
    train: dict                      # {k: (x, y)}
    val: dict                        # {k: (x, y)}
    test: tuple
    text: np.ndarray | None = None   # (n_classes, dim), L2-normalised, or None
    logit_scale: float = 100.0
    n_classes: int = 0
    notes: list = field(default_factory=list)


def _f32(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)


def _near_duplicates(x: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Rows of x whose cosine with any row of `others` is DUPLICATE_COSINE or more."""
    best = np.max([(x @ o.T).max(1) for o in others], axis=0)
    return best >= DUPLICATE_COSINE


def _shot_sets(z) -> dict:
    ks = sorted(int(k[5:-2]) for k in z.files if k.startswith("train") and k.endswith("_x"))
    return {k: (_f32(z[f"train{k}_x"]), z[f"train{k}_y"].astype(np.int64)) for k in ks}


def shared_tasks(folder: Path, wanted: set | None) -> list[Task]:
    """Tasks from the shared CLIP feature files (layout in that folder's README)."""
    def want(name):
        return wanted is None or name in wanted

    tasks = []
    for name in NO_TEXT_SETS:
        path = folder / f"vitb32_{name}.npz"
        if not want(name) or not path.is_file():
            continue
        with np.load(path) as z:
            train, val = _shot_sets(z), (_f32(z["val_x"]), z["val_y"].astype(np.int64))
            test = (_f32(z["test_x"]), z["test_y"].astype(np.int64))
        tasks.append(Task(name, train, {k: val for k in train}, test, n_classes=int(test[1].max()) + 1))

    text_path = folder / "imagenet_text_weights.npz"
    if text_path.is_file() and (want("imagenet") or want("pets-24") or want("pets-24-no-text")):
        with np.load(text_path) as z:
            text_all = _f32(z["vitb32"].T)  # (1000, 512)
    if want("imagenet") and (folder / "vitb32_imagenet.npz").is_file():
        with np.load(folder / "vitb32_imagenet.npz") as z:
            shots = _shot_sets(z)
        (x1, y1), (x2, y2), (x4, y4) = shots[1], shots[2], shots[4]
        keep = ~_near_duplicates(x4, x1, x2)
        val1 = ~_near_duplicates(x2, x1)
        val2 = ~_near_duplicates(x1, x2)
        tasks.append(Task("imagenet", {1: (x1, y1), 2: (x2, y2)},
                          {1: (x2[val1], y2[val1]), 2: (x1[val2], y1[val2])}, (x4[keep], y4[keep]),
                          text=text_all, n_classes=1000,
                          notes=[f"test: 4-shot set minus near-duplicates, {int(keep.sum())} images; "
                                 f"validation: the other shot set minus near-duplicates "
                                 f"({int(val1.sum())} / {int(val2.sum())} images)"]))
    pets = folder / "vitb32_oxford_pets.npz"
    if (want("pets-24") or want("pets-24-no-text")) and pets.is_file():
        mapping = json.loads((folder / "oxford_pets_to_imagenet.json").read_text())["pets_to_imagenet"]
        pairs = sorted((m["pets_label"], m["imagenet_index"]) for m in mapping.values())
        old = np.full(1000, -1)
        for new, (label, _) in enumerate(pairs):
            old[label] = new
        text = text_all[[idx for _, idx in pairs]]

        def subset(x, y):
            keep = old[y] >= 0
            return x[keep], old[y[keep]]

        with np.load(pets) as z:
            train = {k: subset(*xy) for k, xy in _shot_sets(z).items()}
            val = subset(_f32(z["val_x"]), z["val_y"].astype(np.int64))
            test = subset(_f32(z["test_x"]), z["test_y"].astype(np.int64))
        for name, t in (("pets-24", text), ("pets-24-no-text", None)):
            if want(name):
                tasks.append(Task(name, train, {k: val for k in train}, test, text=t, n_classes=len(pairs)))
    return tasks


def project_task(folder: Path, ks=(1, 2, 4, 8, 16)) -> Task:
    """A task from the embed stage's feature folder (see fewclip.features)."""
    sets = {s: load_features(folder / f"{s}.npz") for s in ("train", "val", "test")}
    n = len(sets["train"].classes)
    with np.load(folder / "text.npz", allow_pickle=False) as z:
        text, scale = z["features"][:n].astype(np.float32), float(z["logit_scale"])
    tx, ty = sets["train"].features, sets["train"].labels
    val = (sets["val"].features, sets["val"].labels)
    train = {}
    for k in ks:
        idx, _ = draw_shots(ty, k, 0, np.random.default_rng([0, k]))
        train[k] = (tx[idx], ty[idx])
    train["all"] = (tx, ty)
    return Task("mine", train, {k: val for k in train}, (sets["test"].features, sets["test"].labels),
                text=text, logit_scale=scale, n_classes=n)


def run_task(task: Task, heads: list[str], head_params: dict, seeds: int, log) -> list[dict]:
    rows = []
    xt, yt = task.test
    for k, (x, y) in task.train.items():
        xv, yv = task.val[k]
        shots = len(y) / task.n_classes
        for name in heads:
            seed, n_seeds = 0, 1
            while seed < n_seeds:
                head = make_head(name, head_params.get(name), text_features=task.text,
                                 logit_scale=task.logit_scale, seed=seed)
                n_seeds = seeds if head.stochastic else 1
                start = time.perf_counter()
                head.fit(x, y, xv, yv, n_classes=task.n_classes)
                seconds = time.perf_counter() - start
                acc = float((head.predict_proba(xt).argmax(1) == yt).mean())
                rows.append({"set": task.name, "head": name, "k": str(k), "seed": seed, "shots": shots,
                             "acc": acc, "seconds": seconds})
                log(f"{task.name:<16} k={k!s:<4} {name:<14} seed {seed}: {acc:.4f} ({seconds:.1f}s)")
                seed += 1
    if task.text is not None:
        acc = float((ZeroShotHead(task.text, task.logit_scale).predict_proba(xt).argmax(1) == yt).mean())
        rows += [{"set": task.name, "head": "zero-shot", "k": str(k), "seed": 0, "shots": 0.0,
                  "acc": acc, "seconds": 0.0} for k in task.train]
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one row per (set, head), one column per shot count, mean ± std (seconds)."""
    lines = []
    for name in dict.fromkeys(r["set"] for r in rows):
        summary = summarize([r for r in rows if r["set"] == name])
        ks = list(dict.fromkeys(r["k"] for r in rows if r["set"] == name))
        lines += [f"| {name} | " + " | ".join(f"{k} shot{'s' if k != '1' else ''}" for k in ks) + " |",
                  "|---|" + "---|" * len(ks)]
        for head, by_k in summary.items():
            cells = []
            for k in ks:
                v = by_k[k]
                std = f" ± {100 * v['std']:.1f}" if v["seeds"] > 1 else ""
                secs = f" ({v['seconds']:.1f}s)" if head != "zero-shot" else ""
                cells.append(f"{100 * v['mean']:.1f}{std}{secs}")
            lines.append(f"| {head} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="shared clip-features folder, or an embed stage feature folder")
    ap.add_argument("--sets", nargs="*", help="shared files only: run only these sets (default: all found)")
    ap.add_argument("--heads", nargs="*", help="heads to run (default: params.yaml shots.heads plus ncm)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds for heads with randomness (default 5)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()

    params = load_params()
    heads = args.heads or list(dict.fromkeys(["ncm", "linear", *params["shots"]["heads"]]))
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        sys.exit(f"--heads: {unknown} are not heads ({', '.join(HEADS)})")
    if (args.folder / "train.npz").is_file():
        tasks = [project_task(args.folder)]
    else:
        tasks = shared_tasks(args.folder, set(args.sets) if args.sets else None)
    if not tasks:
        sys.exit(f"{args.folder}: no feature files found (expected vitb32_<set>.npz or train.npz)")

    rows, start = [], time.perf_counter()
    for task in tasks:
        for note in task.notes:
            print(f"{task.name}: {note}", file=sys.stderr)
        rows += run_task(task, heads, params.get("heads") or {}, args.seeds,
                         lambda msg: print(msg, file=sys.stderr, flush=True))
    md = table(rows)
    print(md)
    print(f"{len(rows)} results in {time.perf_counter() - start:.0f}s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "heads_real.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "heads_real.md").write_text(md)
    summaries = {t.name: summarize([r for r in rows if r["set"] == t.name]) for t in tasks}
    shots_grid_png(summaries, args.out / "heads_real.png",
                   "Real CLIP ViT-B/32 features: test accuracy vs shots per class")
    print(f"-> {args.out}/heads_real.{{md,json,png}}")


if __name__ == "__main__":
    main()
