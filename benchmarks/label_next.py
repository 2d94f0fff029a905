"""Which photos to label next, on real CLIP features: `fewclip.suggest.label_next` against
random picks, a control, a simple baseline and a ceiling.

Protocol, per set of ../shared/datasets/clip-features (real CLIP ViT-B/32 features) and seed:
the pool is the set's validation split, labels hidden; the start is 1 random label per class
from the pool (and, on Pets-24 with CLIP's text classifier, also 0 labels); each of 4 rounds
adds one label per class (n = the number of classes); after each round two fixed classifiers
are fitted on the labels so far and tested on the test split: `gda` (with the text prior
where there are text features) and `linear` (logistic regression, C=10: no text prior). Methods:
  rule      fewclip.suggest.label_next
  random    uniform random picks
  control   random picks balanced by predicted class (nearest labelled class mean, or zero-shot)
  baseline  balanced by predicted class, the most typical photo of each class (the highest
            mean similarity to its 20 nearest neighbours among the photos predicted as it)
  ceiling   random picks balanced by true class
Prints the mean accuracy after each round and the paired difference to random with a 95%
interval (t, over seeds); `--json` keeps every figure.

    python benchmarks/label_next.py [--seeds 10] [--sets caltech101 ...] [--json out.json]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fewclip.heads import make_head, one_thread
from fewclip.suggest import label_next, predicted_classes, typicality

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clip-features"
SETS = ["caltech101", "oxford_flowers", "oxford_pets", "ucf101", "fgvc", "dtd"]
METHODS = ["rule", "random", "control", "baseline", "ceiling"]
ROUNDS = 4
EVALUATORS = ("gda", "linear")


def normalise(x):
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load(name: str) -> dict:
    if name == "pets24":  # the 24 pet classes that have an ImageNet class: CLIP's own text classifier
        d = load("oxford_pets")
        mapping = json.loads((DATA / "oxford_pets_to_imagenet.json").read_text())["pets_to_imagenet"]
        keep = sorted(m["pets_label"] for m in mapping.values())
        column = {m["pets_label"]: m["imagenet_index"] for m in mapping.values()}
        remap = {c: j for j, c in enumerate(keep)}
        for split in ("val", "test"):
            m = np.isin(d[f"{split}_y"], keep)
            d[f"{split}_x"], d[f"{split}_y"] = d[f"{split}_x"][m], np.array([remap[c] for c in d[f"{split}_y"][m]])
        with np.load(DATA / "imagenet_text_weights.npz") as z:
            W = z["vitb32"].astype(np.float32)
        d["text"] = normalise(W[:, [column[i] for i in keep]].T)
        return d
    with np.load(DATA / f"vitb32_{name}.npz") as z:
        d = {k: z[k] for k in z.files}
    for k in list(d):
        d[k] = normalise(d[k]) if k.endswith("_x") else d[k].astype(np.int64)
    d["text"] = None
    return d


def pick(method, X, L, y, n, C, text, rng, true_y, seed):
    free = np.arange(len(X))
    if method == "rule":
        return label_next(X, L, y, n, n_classes=C, text_features=text, seed=seed)
    if method == "random":
        return list(rng.choice(len(X), min(n, len(X)), replace=False))
    if method == "ceiling":
        out = []
        for c in rng.permutation(C):
            idx = np.flatnonzero(true_y == c)
            if len(idx):
                out.append(int(rng.choice(idx)))
        return out[:n]
    pred, _ = predicted_classes(X, L, y, C, text, refine=False)
    out = []
    for c in range(C):
        idx = np.flatnonzero(pred == c)
        if not len(idx):
            continue
        if method == "control":
            out.append(int(rng.choice(idx)))
        else:  # baseline: the most typical of the photos predicted as c
            out.append(int(idx[typicality(X[idx], rng).argmax()]))
    rest = np.setdiff1d(free, out)  # classes predicted for no photo: random others fill the round
    out += list(rng.choice(rest, min(n - len(out), len(rest)), replace=False)) if len(out) < n else []
    return out[:n]


def evaluate(L, y, C, d):
    accs = {}
    for name in EVALUATORS:
        kwargs = {"text_features": d["text"], "logit_scale": 100.0} if name == "gda" and d["text"] is not None else {}
        head = make_head(name, {}, **kwargs)
        head.fit(L, y, n_classes=C)
        accs[name] = float((head.predict_proba(d["test_x"]).argmax(1) == d["test_y"]).mean())
    return accs


def run(name, seeds, starts):
    d = load(name)
    X, Y = d["val_x"], d["val_y"]
    C = int(Y.max()) + 1
    res = {}  # (start, method) -> array (seeds, rounds + 1, evaluators)
    for start in starts:
        for method in METHODS:
            rows = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                pool = np.ones(len(X), bool)
                lab = []
                if start == 1:
                    for c in range(C):
                        idx = np.flatnonzero(Y == c)
                        lab.append(int(np.random.default_rng([seed, c]).choice(idx)))
                pool[lab] = False
                curve = []
                for r in range(ROUNDS + 1):
                    if r:
                        idx = np.flatnonzero(pool)
                        got = pick(method, X[idx], X[lab], Y[lab], C, C, d["text"], rng, Y[idx], seed * 10 + r)
                        new = [int(idx[i]) for i in got]
                        lab += new
                        pool[new] = False
                    if lab:
                        e = evaluate(X[lab], Y[lab], C, d)
                    else:  # 0 labels: zero-shot (gda with a text prior and no shot is zero-shot)
                        zs = float(((d["test_x"] @ d["text"].T).argmax(1) == d["test_y"]).mean())
                        e = {"gda": zs}
                    curve.append([e.get(h, 1.0 / C) for h in EVALUATORS])
                rows.append(curve)
            res[(start, method)] = np.array(rows)
    return res, d


def interval(diff):
    m = diff.mean()
    if len(diff) < 2:
        return m, 0.0
    from scipy import stats
    return m, float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sets", nargs="+", default=SETS + ["pets24"])
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {}
    with one_thread(["sklearn.covariance"]):
        for name in args.sets:
            t = time.perf_counter()
            starts = (0, 1) if name == "pets24" else (1,)
            res, d = run(name, args.seeds, starts)
            for start in starts:
                print(f"\n{name}, start {start} label(s) per class ({args.seeds} seeds, {time.perf_counter() - t:.0f}s): "
                      "test accuracy after each round (gda | linear); rule - random with 95% interval")
                for method in METHODS:
                    a = res[(start, method)]
                    line = "  ".join(f"{a[:, r, 0].mean():.3f}|{a[:, r, 1].mean():.3f}" for r in range(ROUNDS + 1))
                    print(f"  {method:9s} {line}", flush=True)
                for ref in ("random", "baseline"):
                    diffs = []
                    for r in range(1, ROUNDS + 1):
                        dd = res[(start, "rule")][:, r, :].mean(1) - res[(start, ref)][:, r, :].mean(1)
                        m, h = interval(dd)
                        diffs.append(f"r{r} {100 * m:+.1f}±{100 * h:.1f}")
                    print(f"  rule - {ref:8s} (mean of both heads, points): " + "  ".join(diffs), flush=True)
                out[f"{name}/start{start}"] = {m: res[(start, m)].mean(0).tolist() for m in METHODS}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
