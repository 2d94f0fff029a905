"""Accuracy versus shots per class: every head, several seeds, from cached features.

The k shots and the validation images are drawn from the training pool only (the split
stage's train and validation images together); the test features are touched once per fit,
for the reported number. `k = "all"` uses the split stage's own train/validation split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .heads import ZeroShotHead, make_head


@dataclass
class Features:
    x: np.ndarray
    y: np.ndarray


def draw_shots(labels: np.ndarray, k: int, val_per_class: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of k training shots and min(k, val_per_class) validation images per class.

    A class with k or fewer images keeps one of them for validation (when it has two or more)
    and trains on the rest.
    """
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = min(k, max(len(idx) - 1, 1))
        n_val = min(k, val_per_class, len(idx) - n_train)
        train.append(idx[:n_train])
        val.append(idx[n_train:n_train + n_val])
    return np.concatenate(train), np.concatenate(val)


def accuracy(head, x: np.ndarray, y: np.ndarray) -> float:
    return float((head.predict_proba(x).argmax(1) == y).mean())


def fit_plan(heads: list[str], head_params: dict, ks: list, seeds: int) -> list[tuple]:
    """The (k, seed, head) fits of a curve. At k = "all" the training and validation images
    are the split stage's, the same for every seed, so a deterministic head is fitted once
    there; a stochastic one (its result depends on the seed) once per seed."""
    stochastic = {name: bool(make_head(name, head_params.get(name)).stochastic) for name in heads}
    return [(k, seed, name) for k in ks for seed in range(seeds) for name in heads
            if k != "all" or seed == 0 or stochastic[name]]


def shots_curve(train: Features, val: Features, test: Features, text_features: np.ndarray,
                logit_scale: float, heads: list[str], head_params: dict, ks: list, seeds: int,
                val_per_class: int, progress=None) -> list[dict]:
    """One row per fit of `fit_plan` (head, k, seed: test accuracy, mean shots per class,
    seconds to fit), then one zero-shot row per k (not a fit: its seconds are 0)."""
    pool = Features(np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]))
    n_classes = text_features.shape[0]
    plan = set(fit_plan(heads, head_params, ks, seeds))
    rows = []
    for k in ks:
        for seed in range(seeds):
            if k == "all":
                tr, va = train, val
            else:
                rng = np.random.default_rng([seed, int(k)])
                ti, vi = draw_shots(pool.y, int(k), val_per_class, rng)
                tr, va = Features(pool.x[ti], pool.y[ti]), Features(pool.x[vi], pool.y[vi])
            shots = len(tr.y) / n_classes
            for name in heads:
                if (k, seed, name) not in plan:
                    continue
                head = make_head(name, head_params.get(name), text_features=text_features,
                                 logit_scale=logit_scale, seed=seed)
                start = time.perf_counter()
                head.fit(tr.x, tr.y, va.x, va.y, n_classes=n_classes)
                rows.append({"head": name, "k": str(k), "seed": seed, "shots": shots,
                             "acc": accuracy(head, test.x, test.y),
                             "seconds": time.perf_counter() - start})
                if progress:
                    progress()
    zs = accuracy(ZeroShotHead(text_features, logit_scale), test.x, test.y)
    rows += [{"head": "zero-shot", "k": str(k), "seed": 0, "shots": 0.0, "acc": zs, "seconds": 0.0} for k in ks]
    return rows


def summarize(rows: list[dict]) -> dict:
    """{head: {k: {mean, std, shots, seconds}}} over seeds."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["head"], {}).setdefault(row["k"], []).append(row)
    return {head: {k: {"mean": float(np.mean([r["acc"] for r in rs])),
                       "std": float(np.std([r["acc"] for r in rs])),
                       "shots": float(np.mean([r["shots"] for r in rs])),
                       "seconds": float(np.mean([r["seconds"] for r in rs])),
                       "seeds": len(rs)}
                   for k, rs in by_k.items()}
            for head, by_k in out.items()}


def curve_records(summary: dict) -> list[dict]:
    """`summarize`'s table as plot records, one per head and k: `head`, `k` ("1", ..., "all"),
    `shots` (mean training shots per class; the x of the plot), `acc` and `std` over seeds."""
    return [{"head": head, "k": k, "shots": round(v["shots"], 3), "acc": round(v["mean"], 5),
             "std": round(v["std"], 5), "seeds": v["seeds"]}
            for head, by_k in summary.items() for k, v in by_k.items()]


HEADLINE_KS = ("1", "4", "16", "all")  # the shot counts of the curve that become DVC metrics


def curve_metrics(records: list[dict], head: str) -> dict:
    """The headline figures of the shots curve: `head`'s mean test accuracy at the shot
    counts of HEADLINE_KS that the curve has (`k01`, `k04`, `k16`, `k_all`: names that sort
    in shot order; the whole curve stays plot data) and zero-shot's, from `curve_records`;
    {} when `head` was not in the curve."""
    mine = {("k_all" if r["k"] == "all" else f"k{int(r['k']):02d}"): r["acc"] for r in records
            if r["head"] == head and r["k"] in HEADLINE_KS}
    zero = [r["acc"] for r in records if r["head"] == "zero-shot"]
    return {**mine, "zero_shot": zero[0]} if mine and zero else {}
