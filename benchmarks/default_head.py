"""Can a head that trains in epochs replace the default head `gda`? Fresh random draws, per-draw evidence.

Run by hand from the repository root (not in CI):

    python benchmarks/default_head.py                                   # the full comparison
    python benchmarks/default_head.py --sets pets-24 --ks 1 2 --draws 2 --out /tmp/quick
    python benchmarks/default_head.py --draws 10 --no-text-draws 3      # fewer draws where there is no text

Question. `gda` (closed form) is the default head. A candidate replacement (`zs-linear`,
`tip-adapter-f`) must (a) be on average at least as accurate as `gda`, and (b) where there is a
text prior, never fall more than 0.5 accuracy points below zero-shot CLIP on any single draw.
Criterion (b) is about single draws, so this script draws the K-shot sets afresh (seeded) many
times instead of using the fixed K-shot sets stored in the feature files, and reports the worst
draw and how many draws fall below -0.5 points, for every head, gda included.

Data: the shared real CLIP ViT-B/32 features (`--folder`, see its README).
  * `imagenet` (1000 classes, text prior): no test split in the files. The pool is the 1-, 2-
    and 4-shot sets together (7 images per class), minus near-duplicates within a class
    (cosine >= 0.95, the first one kept; 6967 images left). Each draw takes k shots and
    validation images per class from the pool and tests on the rest of the pool. The pool is
    too small for min(k, 4) validation images at k = 4, so validation is capped to leave at
    least IMAGENET_MIN_TEST images per class for test: 1 / 2 / 1 validation image(s) per class
    at k = 1 / 2 / 4 (about 5 / 3 / 2 test images per class).
  * `pets-24` (the 24 Oxford Pets classes with an ImageNet class, text prior = those 24
    ImageNet text columns, built as in heads_real.py): pool = train16 + val, test = the official
    test split (2386 images).
  * `caltech101`, `oxford_flowers`, `oxford_pets` (37), `ucf101`, `fgvc`: no text; heads run
    with text_features=None. Pool = train16 + val, test = the official test split.
Draws use the project's own helper and convention, `fewclip.shots.draw_shots` with
rng = default_rng([draw, k]) and min(k, params.yaml shots.val_per_class) validation images per
class (capped on ImageNet as above). Heads are built with `make_head(name, params['heads'][name],
text_features=..., logit_scale=100.0, seed=draw)`: the project's default params.

Output: per (set, k), one row per head: mean test accuracy (± std over draws), mean delta vs
gda (and on how many draws the head beat / lost to gda), and with a text prior the per-draw
delta vs zero-shot (mean, worst draw, number of draws below -0.5 points), plus mean seconds to
fit. Also listed: every draw on which a head's validation choice left zero-shot yet lost more
than 0.5 points on test. Writes <out>/default_head.md and <out>/default_head.json (every fit:
accuracy, validation accuracy, chosen params, seconds); the JSON is rewritten after every
draw, so a long run leaves partial results behind, and `--resume` continues an interrupted
run (same settings) from them.

torch runs on one thread (torch.set_num_threads(1)): this is meant to share a small machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for heads_real (run as a script)

from fewclip.heads import HEADS, ZeroShotHead, make_head  # noqa: E402
from fewclip.pipeline.params import load_params  # noqa: E402
from fewclip.shots import draw_shots  # noqa: E402

TEXT_SETS = ("imagenet", "pets-24")
NO_TEXT_SETS = ("caltech101", "oxford_flowers", "oxford_pets", "ucf101", "fgvc")
DEFAULT_KS = {"imagenet": (1, 2, 4), "pets-24": (1, 2, 4, 8, 16)}
NO_TEXT_KS = (1, 4, 16)
HEAD_NAMES = ("gda", "zs-linear", "tip-adapter-f")
LOGIT_SCALE = 100.0
DUPLICATE_COSINE = 0.95
IMAGENET_MIN_TEST = 2     # test images per class left in the ImageNet pool (when it has them)
MARGIN = 0.005            # criterion (b): at most 0.5 accuracy points below zero-shot


def _f32(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)


def dedup_within_class(x: np.ndarray, y: np.ndarray, cosine: float = DUPLICATE_COSINE) -> np.ndarray:
    """Mask of the rows to keep: in each class, a row whose cosine with an earlier kept row of
    the same class is `cosine` or more is dropped (greedy, in row order)."""
    keep = np.ones(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        sim = x[idx] @ x[idx].T
        kept: list[int] = []
        for i in range(len(idx)):
            if kept and sim[i, kept].max() >= cosine:
                keep[idx[i]] = False
            else:
                kept.append(i)
    return keep


class Pool:
    """One benchmark set: the labelled pool draws come from, an optional fixed test split and
    the text prior (or None)."""

    def __init__(self, name, x, y, n_classes, text=None, test=None, min_test=0, note=""):
        self.name, self.x, self.y, self.n_classes = name, x, y, n_classes
        self.text, self.test, self.min_test, self.note = text, test, min_test, note

    def val_per_class(self, k: int, val_per_class: int) -> int:
        """The validation images per class asked of draw_shots: min(k, val_per_class), capped
        when the test images come from the pool (ImageNet) so that, in a class with the
        typical pool size, at least `min_test` images are left for test."""
        v = min(k, val_per_class)
        if self.test is None:
            typical = int(np.median(np.bincount(self.y, minlength=self.n_classes)))
            v = max(1, min(v, typical - k - self.min_test))
        return v

    def draw(self, k: int, draw: int, val_per_class: int):
        """(train, val, test) as (x, y) pairs for one seeded draw."""
        rng = np.random.default_rng([draw, k])  # fewclip.shots.shots_curve's convention
        ti, vi = draw_shots(self.y, k, self.val_per_class(k, val_per_class), rng)
        if self.test is not None:
            test = self.test
        else:
            rest = np.ones(len(self.y), dtype=bool)
            rest[ti] = rest[vi] = False
            test = (self.x[rest], self.y[rest])
        return (self.x[ti], self.y[ti]), (self.x[vi], self.y[vi]), test


def load_pools(folder: Path, names: list[str], centre_crop_pool: bool = False) -> list[Pool]:
    """The asked sets. `centre_crop_pool`: on the sets with a test split, pool the val split only
    (centre-crop features, like the test split) instead of train16 + val (train16 holds
    10-view augmented means, a different feature distribution)."""
    pools = []
    with_train16 = not centre_crop_pool
    what = "val" if centre_crop_pool else "train16+val"
    text_all = None
    if set(names) & set(TEXT_SETS):
        with np.load(folder / "imagenet_text_weights.npz") as z:
            text_all = _f32(z["vitb32"].T)  # (1000, 512)
    for name in names:
        if name == "imagenet":
            with np.load(folder / "vitb32_imagenet.npz") as z:
                x = np.concatenate([_f32(z[f"train{k}_x"]) for k in (1, 2, 4)])
                y = np.concatenate([z[f"train{k}_y"].astype(np.int64) for k in (1, 2, 4)])
            keep = dedup_within_class(x, y)
            pools.append(Pool(name, x[keep], y[keep], 1000, text=text_all, min_test=IMAGENET_MIN_TEST,
                              note=f"pool: train1+train2+train4, {len(y)} images, {int(keep.sum())} after "
                                   f"removing near-duplicates (cosine >= {DUPLICATE_COSINE}) within a class; "
                                   f"test: the pool minus the draw's train and validation images"))
        elif name == "pets-24":
            mapping = json.loads((folder / "oxford_pets_to_imagenet.json").read_text())["pets_to_imagenet"]
            pairs = sorted((m["pets_label"], m["imagenet_index"]) for m in mapping.values())
            old = np.full(1000, -1)
            for new, (label, _) in enumerate(pairs):
                old[label] = new

            def subset(x, y):
                keep = old[y] >= 0
                return x[keep], old[y[keep]]

            with np.load(folder / "vitb32_oxford_pets.npz") as z:
                tr = subset(_f32(z["train16_x"]), z["train16_y"].astype(np.int64))
                va = subset(_f32(z["val_x"]), z["val_y"].astype(np.int64))
                te = subset(_f32(z["test_x"]), z["test_y"].astype(np.int64))
            if not with_train16:
                tr = tr[0][:0], tr[1][:0]
            pools.append(Pool(name, np.concatenate([tr[0], va[0]]), np.concatenate([tr[1], va[1]]), len(pairs),
                              text=text_all[[idx for _, idx in pairs]], test=te,
                              note=f"pool: {what} of the 24 pet classes with an ImageNet class, "
                                   f"{len(tr[1]) + len(va[1])} images; test: official, {len(te[1])} images"))
        elif name in NO_TEXT_SETS:
            with np.load(folder / f"vitb32_{name}.npz") as z:
                n16 = len(z["train16_y"]) if with_train16 else 0
                x = np.concatenate([_f32(z["train16_x"])[:n16], _f32(z["val_x"])])
                y = np.concatenate([z["train16_y"][:n16], z["val_y"]]).astype(np.int64)
                test = (_f32(z["test_x"]), z["test_y"].astype(np.int64))
            pools.append(Pool(name, x, y, int(test[1].max()) + 1, test=test,
                              note=f"no text; pool: {what}, {len(y)} images; test: official, "
                                   f"{len(test[1])} images"))
        else:
            sys.exit(f"--sets: unknown set {name!r} (known: {', '.join(TEXT_SETS + NO_TEXT_SETS)})")
    return pools


def _accuracy(head, x, y) -> float:
    return float((head.predict_proba(x).argmax(1) == y).mean())


def _chosen(head) -> dict:
    return head.chosen()


def run_cell(pool: Pool, k: int, draws: int, heads: list[str], head_params: dict, val_per_class: int,
             log, done=frozenset(), save=None) -> list[dict]:
    """Every head on `draws` fresh draws of k shots per class; one row per (draw, head).
    Draws in `done` (from an earlier, interrupted run) are skipped; `save(rows)` is called
    after every draw with this cell's new rows so far."""
    rows = []
    for draw in range(draws):
        if draw in done:
            continue
        (x, y), (xv, yv), (xt, yt) = pool.draw(k, draw, val_per_class)
        base = {"set": pool.name, "k": k, "draw": draw, "n_train": len(y), "n_val": len(yv), "n_test": len(yt)}
        new = []
        if pool.text is not None:
            zs = ZeroShotHead(pool.text, LOGIT_SCALE)
            new.append({**base, "head": "zero-shot", "acc": _accuracy(zs, xt, yt),
                        "val_acc": _accuracy(zs, xv, yv), "seconds": 0.0, "chosen": {}})
        for name in heads:
            head = make_head(name, head_params.get(name), text_features=pool.text, logit_scale=LOGIT_SCALE,
                             seed=draw)
            start = time.perf_counter()
            head.fit(x, y, xv, yv, n_classes=pool.n_classes)
            seconds = time.perf_counter() - start
            new.append({**base, "head": name, "acc": _accuracy(head, xt, yt), "val_acc": _accuracy(head, xv, yv),
                        "seconds": seconds, "chosen": _chosen(head)})
        rows += new
        accs = "  ".join(f"{r['head']} {100 * r['acc']:.2f} ({r['seconds']:.1f}s)" for r in new)
        log(f"{pool.name:<15} k={k:<2} draw {draw:<2} n_val {len(yv):<5} n_test {len(yt):<5} {accs}")
        if save:
            save(rows)
    return rows


def _left_prior(row: dict) -> bool:
    """Whether a text-prior head's validation choice is something other than zero-shot."""
    c = row["chosen"]
    if row["head"] == "gda":
        return c.get("alpha", 0.0) != 0.0
    if row["head"] == "zs-linear":
        return c.get("gamma", 0.0) != 0.0
    if row["head"] in ("tip-adapter", "tip-adapter-f"):
        return c.get("alpha", 0.0) != 0.0  # alpha 0: zero-shot logits, whatever the (trained) keys
    return True


def summarize(rows: list[dict]) -> list[dict]:
    """One summary per (set, k, head), in run order; deltas are per draw, in accuracy points."""
    cells = list(dict.fromkeys((r["set"], r["k"]) for r in rows))
    out = []
    for s, k in cells:
        cell = [r for r in rows if r["set"] == s and r["k"] == k]
        by = {}
        for r in cell:
            by.setdefault(r["head"], {})[r["draw"]] = r
        zs, gda = by.get("zero-shot"), by.get("gda")
        for head, d in by.items():
            draws = sorted(d)
            acc = np.array([d[i]["acc"] for i in draws])
            row = {"set": s, "k": k, "head": head, "draws": len(draws), "mean": 100 * acc.mean(),
                   "std": 100 * acc.std(), "seconds": float(np.mean([d[i]["seconds"] for i in draws]))}
            if gda and head != "gda":
                dg = 100 * np.array([d[i]["acc"] - gda[i]["acc"] for i in draws])
                row.update(vs_gda=dg.mean(), vs_gda_wins=int((dg > 0).sum()), vs_gda_losses=int((dg < 0).sum()))
            if zs and head != "zero-shot":
                dz = 100 * np.array([d[i]["acc"] - zs[i]["acc"] for i in draws])
                row.update(vs_zs=dz.mean(), vs_zs_worst=dz.min(), vs_zs_below=int((dz < -100 * MARGIN).sum()),
                           worst_draw=int(draws[int(dz.argmin())]),
                           left_zs=int(sum(_left_prior(d[i]) for i in draws)))
            out.append(row)
    return out


def _fmt(v, spec="+.2f"):
    return "" if v is None else format(v, spec)


def markdown(rows: list[dict], summary: list[dict], pools: list[Pool], command: str, wall: float) -> str:
    lines = ["# Default head: gda against heads that train in epochs, fresh random draws", "",
             f"Command: `{command}`; wall time {wall / 60:.1f} min (torch on 1 thread).", "",
             "Accuracy in points; Δ per draw, then averaged. `vs zs worst`: the worst single draw's delta "
             "against zero-shot; `< -0.5`: draws more than 0.5 points below zero-shot (criterion b). "
             "`W/L vs gda`: draws on which the head beat / lost to gda; `left zs`: draws on which the "
             "head's validation choice was not zero-shot itself.", ""]
    for p in pools:
        lines.append(f"- **{p.name}**: {p.note}")
    lines.append("")
    for s in dict.fromkeys(r["set"] for r in summary):
        text = any(r["head"] == "zero-shot" for r in summary if r["set"] == s)
        lines += [f"## {s}", ""]
        head = "| k | head | draws | mean ± std | Δ vs gda | W/L vs gda |"
        sep = "|---|---|---|---|---|---|"
        if text:
            head += " Δ vs zs (mean) | vs zs worst | < -0.5 | left zs |"
            sep += "---|---|---|---|"
        lines += [head + " s/fit |", sep + "---|"]
        for r in (r for r in summary if r["set"] == s):
            wl = f"{r['vs_gda_wins']}/{r['vs_gda_losses']}" if "vs_gda" in r else ""
            cells = [str(r["k"]), r["head"], str(r["draws"]), f"{r['mean']:.2f} ± {r['std']:.2f}",
                     _fmt(r.get("vs_gda")), wl]
            if text:
                cells += [_fmt(r.get("vs_zs")), _fmt(r.get("vs_zs_worst")),
                          "" if "vs_zs_below" not in r else f"{r['vs_zs_below']}/{r['draws']}",
                          "" if "left_zs" not in r else f"{r['left_zs']}/{r['draws']}"]
            cells.append("" if r["head"] == "zero-shot" else f"{r['seconds']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    # Criterion (a) over every (set, k) cell, and per group.
    lines += ["## Averages over the (set, k) cells", "",
              "| head | all cells: mean Δ vs gda | text-prior cells | no-text cells | cells better / worse than gda |",
              "|---|---|---|---|---|"]
    text_sets = {r["set"] for r in summary if r["head"] == "zero-shot"}
    for h in dict.fromkeys(r["head"] for r in summary if "vs_gda" in r and r["head"] != "zero-shot"):
        rs = [r for r in summary if r["head"] == h]
        t = [r["vs_gda"] for r in rs if r["set"] in text_sets]
        n = [r["vs_gda"] for r in rs if r["set"] not in text_sets]
        allv = t + n
        lines.append(f"| {h} | {np.mean(allv):+.2f} ({len(allv)}) | {_fmt(np.mean(t) if t else None)} | "
                     f"{_fmt(np.mean(n) if n else None)} | {sum(v > 0 for v in allv)} / {sum(v < 0 for v in allv)} |")
    lines.append("")

    # Criterion (b): all draws, per head.
    if text_sets:
        lines += ["## Criterion (b) over all text-prior draws", "",
                  "| head | draws | worst Δ vs zs (set, k, draw) | draws < -0.5 |", "|---|---|---|---|"]
        zs = {(r["set"], r["k"], r["draw"]): r["acc"] for r in rows if r["head"] == "zero-shot"}
        for h in dict.fromkeys(r["head"] for r in rows if r["set"] in text_sets and r["head"] != "zero-shot"):
            d = [(100 * (r["acc"] - zs[(r["set"], r["k"], r["draw"])]), r["set"], r["k"], r["draw"])
                 for r in rows if r["head"] == h and (r["set"], r["k"], r["draw"]) in zs]
            worst = min(d)
            lines.append(f"| {h} | {len(d)} | {worst[0]:+.2f} ({worst[1]}, k={worst[2]}, draw {worst[3]}) | "
                         f"{sum(v < -100 * MARGIN for v, *_ in d)} |")
        lines.append("")

        bad = []
        for r in rows:
            key = (r["set"], r["k"], r["draw"])
            if key in zs and r["head"] != "zero-shot" and r["acc"] - zs[key] < -MARGIN:
                zsv = next(q["val_acc"] for q in rows if q["head"] == "zero-shot"
                           and (q["set"], q["k"], q["draw"]) == key)
                bad.append(f"| {r['set']} | {r['k']} | {r['draw']} | {r['head']} | {r['chosen']} | "
                           f"{100 * (r['val_acc'] - zsv):+.2f} | {100 * (r['acc'] - zs[key]):+.2f} |")
        lines += ["## Draws more than 0.5 points below zero-shot", ""]
        if bad:
            lines += ["| set | k | draw | head | chosen on validation | Δ vs zs on validation | Δ vs zs on test |",
                      "|---|---|---|---|---|---|---|", *bad]
        else:
            lines.append("None.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=Path("../shared/datasets/clip-features"),
                    help="the shared CLIP feature folder (default ../shared/datasets/clip-features)")
    ap.add_argument("--sets", nargs="*", default=list(TEXT_SETS + NO_TEXT_SETS),
                    help=f"sets to run (default: all): {' '.join(TEXT_SETS + NO_TEXT_SETS)}")
    ap.add_argument("--ks", nargs="*", type=int,
                    help="shots per class for every set (default: imagenet 1 2 4, pets-24 1 2 4 8 16, "
                         "no-text sets 1 4 16); imagenet keeps only k <= 4")
    ap.add_argument("--draws", type=int, default=10, help="random draws per (set, k) (default 10)")
    ap.add_argument("--no-text-draws", type=int, help="draws on the no-text sets (default: --draws)")
    ap.add_argument("--heads", nargs="*", default=list(HEAD_NAMES),
                    help=f"heads (default: {' '.join(HEAD_NAMES)}); zero-shot is added where there is text")
    ap.add_argument("--centre-crop-pool", action="store_true",
                    help="sets with a test split: draw from the val split only (centre crops, like test), "
                         "not train16 + val (train16 features are 10-view augmented means)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the draws already in <out>/default_head.json (an interrupted run with the "
                         "same settings) and run only the missing ones")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                    help="folder for default_head.md and default_head.json (default benchmarks/results)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    unknown = [h for h in args.heads if h not in HEADS]
    if unknown:
        sys.exit(f"--heads: {unknown} are not heads ({', '.join(HEADS)})")
    params = load_params()
    head_params = params.get("heads") or {}
    val_per_class = int((params.get("shots") or {}).get("val_per_class", 4))
    command = "python " + " ".join(sys.argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    pools = load_pools(args.folder, args.sets, args.centre_crop_pool)
    for p in pools:
        log(f"{p.name}: {p.note}")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "default_head.json"
    rows, runs = [], []
    if args.resume and json_path.is_file():
        previous = json.loads(json_path.read_text())
        rows, runs = previous["rows"], previous.get("runs", [])
        log(f"--resume: {len(rows)} fits from {json_path}")
    wanted = set(args.heads) | {"zero-shot"}
    run = {"command": command, "wall_seconds": 0.0}
    runs.append(run)
    start = time.perf_counter()

    def save(new_rows, final=False):
        run["wall_seconds"] = time.perf_counter() - start
        out = {"runs": runs, "wall_seconds": sum(r["wall_seconds"] for r in runs), "partial": not final}
        if final:
            out["summary"] = summarize(rows)
        json_path.write_text(json.dumps({**out, "rows": rows + new_rows}, indent=1, default=float) + "\n")

    for p in pools:
        ks = args.ks or DEFAULT_KS.get(p.name, NO_TEXT_KS)
        if p.name == "imagenet":
            ks = [k for k in ks if k <= 4]
        draws = args.draws if p.text is not None or args.no_text_draws is None else args.no_text_draws
        for k in ks:
            heads_by_draw: dict = {}
            for r in rows:
                if r["set"] == p.name and r["k"] == k:
                    heads_by_draw.setdefault(r["draw"], set()).add(r["head"])
            done = {d for d, hs in heads_by_draw.items() if wanted - {"zero-shot"} <= hs}
            rows = [r for r in rows if not (r["set"] == p.name and r["k"] == k and r["draw"] not in done)]
            rows += run_cell(p, k, draws, args.heads, head_params, val_per_class, log, done, save)
            save([])
    # report only what this command asked for: its sets, ks, draws and heads
    asked = {(p.name, k) for p in pools
             for k in (args.ks or DEFAULT_KS.get(p.name, NO_TEXT_KS)) if p.name != "imagenet" or k <= 4}
    limit = {p.name: args.draws if p.text is not None or args.no_text_draws is None else args.no_text_draws
             for p in pools}
    rows = [r for r in rows if (r["set"], r["k"]) in asked and r["draw"] < limit[r["set"]] and r["head"] in wanted]
    save([], final=True)
    wall = sum(r["wall_seconds"] for r in runs)
    md = markdown(rows, summarize(rows), pools, " ; then ".join(r["command"] for r in runs), wall)
    print(md)
    (args.out / "default_head.md").write_text(md)
    log(f"{len(rows)} fits in {wall / 60:.1f} min (all runs) -> {args.out}/default_head.{{md,json}}")

if __name__ == "__main__":
    main()
