"""Accuracy versus shots per class: every head, several seeds, from cached features.

The k shots and the validation images are drawn from the training pool only (the split
stage's train and validation images together); the test features are touched once per fit,
for the reported number. `k = "all"` uses the split stage's own train/validation split.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .heads import HEADS, ZeroShotHead, fit_imports, make_head, preload


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


def fit_plan(heads: list[str], ks: list, seeds: int) -> list[tuple]:
    """The (k, seed, head) fits of a curve. At k = "all" the training and validation images
    are the split stage's, the same for every seed, so a deterministic head is fitted once
    there; a stochastic one (its result depends on the seed) once per seed."""
    return [(k, seed, name) for k in ks for seed in range(seeds) for name in heads
            if k != "all" or seed == 0 or HEADS[name].stochastic]


def resolve_workers(workers, n_fits: int) -> int:
    """`auto`: one process per core this process may use (`os.sched_getaffinity`), at most
    one per fit; a number: that many (0 and 1: fit in this process)."""
    if workers == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(cores, n_fits))
    return max(1, min(int(workers), n_fits))


# The data of the fits, set in the parent before the worker processes fork from it (so they
# inherit it without pickling) or in the parent itself when it fits alone.
_WORLD: dict = {}


def _draw(k, seed: int) -> tuple[Features, Features]:
    """The training and validation images of (k, seed): drawn afresh for every fit (a
    permutation per class, microseconds), the same for every head."""
    w = _WORLD
    if k == "all":
        return w["train"], w["val"]
    ti, vi = draw_shots(w["pool"].y, int(k), w["val_per_class"], np.random.default_rng([seed, int(k)]))
    return Features(w["pool"].x[ti], w["pool"].y[ti]), Features(w["pool"].x[vi], w["pool"].y[vi])


def _fit(task: tuple) -> dict:
    """One fit of the plan, (k, seed, head name): its row of the curve."""
    k, seed, name = task
    w = _WORLD
    tr, va = _draw(k, seed)
    n_classes = w["text_features"].shape[0]
    head = make_head(name, w["head_params"].get(name), text_features=w["text_features"],
                     logit_scale=w["logit_scale"], seed=seed)
    start = time.perf_counter()
    head.fit(tr.x, tr.y, va.x, va.y, n_classes=n_classes)
    return {"head": name, "k": str(k), "seed": seed, "shots": len(tr.y) / n_classes,
            "acc": accuracy(head, w["test"].x, w["test"].y), "seconds": time.perf_counter() - start}


def _one_thread_worker() -> None:
    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def shots_curve(train: Features, val: Features, test: Features, text_features: np.ndarray,
                logit_scale: float, heads: list[str], head_params: dict, ks: list, seeds: int,
                val_per_class: int, progress=None, workers=1) -> list[dict]:
    """One row per fit of `fit_plan`, in its order (head, k, seed: test accuracy, mean shots
    per class, seconds to fit), then one zero-shot row per k (not a fit: its seconds are 0).

    `workers` > 1 fits in that many processes forked from this one, each with one thread
    (`resolve_workers`); every fit draws its own shots from (k, seed) and seeds its own
    training, so the rows are the same whatever the number of processes."""
    plan = fit_plan(heads, ks, seeds)
    _WORLD.clear()
    _WORLD.update(train=train, val=val, test=test, text_features=text_features, logit_scale=logit_scale,
                  head_params=head_params, val_per_class=val_per_class,
                  pool=Features(np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y])))
    workers = resolve_workers(workers, len(plan))
    rows: list = [None] * len(plan)
    try:
        if workers == 1:
            for i, task in enumerate(plan):
                rows[i] = _fit(task)
                if progress:
                    progress()
        else:
            # fork: the workers inherit the features and the imported modules (what the fits
            # import on first use too: imported here once, not once per worker); the slowest
            # fits (most shots) go first so that no process is left with a long one at the end
            preload(fit_imports(heads))
            order = sorted(range(len(plan)), key=lambda i: -_cost(plan[i]))
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_one_thread_worker) as pool:
                futures = {pool.submit(_fit, plan[i]): i for i in order}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    if progress:
                        progress()
    finally:
        _WORLD.clear()
    zs = accuracy(ZeroShotHead(text_features, logit_scale), test.x, test.y)
    rows += [{"head": "zero-shot", "k": str(k), "seed": 0, "shots": 0.0, "acc": zs, "seconds": 0.0} for k in ks]
    return rows


def _cost(task: tuple) -> float:
    k = task[0]
    return float("inf") if k == "all" else float(k)


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
