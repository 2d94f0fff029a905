"""Accuracy versus shots per class: every head, several seeds, from cached features.

The k shots and the validation images are drawn from the training pool only (the split
stage's train and validation images together); the test features are touched once per fit,
for the reported number. `k = "all"` uses the split stage's own train/validation split.

Draws are stable: within each class, seed s ranks the images by a hash of (s, image path)
and takes the first k for training and the next ones for validation (`draw_ranked`). The
k-shot sets of one seed are nested (the 2 shots hold the 1), and a photo added to the pool
changes a draw only where it ranks among the images drawn, as a fresh uniform draw would
with that probability. A fit whose inputs are all unchanged (code, head params, seed, drawn
features, test and text features) is then read back from the fit cache (`FitCache`)
instead of fitted again: adding photos, or changing one head's params, refits only what
changed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .cache import FitCache
from .features import FeatureSet
from .metrics import accuracy
from .heads import HEADS, ZeroShotHead, fit_imports, make_head, one_thread, preload


def _rows(fs: FeatureSet, idx: np.ndarray) -> FeatureSet:
    """The images `idx` of a feature set."""
    return FeatureSet(fs.features[idx], fs.labels[idx], fs.classes, [fs.paths[i] for i in idx] if fs.paths else [],
                      fs.model, fs.model_sha256)


def _split_class(idx: np.ndarray, k: int, val_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """k training and min(k, val_per_class) validation images of one class's ordered indices.
    A class with k or fewer images keeps one of them for validation (when it has two or more)
    and trains on the rest."""
    n_train = min(k, max(len(idx) - 1, 1))
    n_val = min(k, val_per_class, len(idx) - n_train)
    return idx[:n_train], idx[n_train:n_train + n_val]


def draw_shots(labels: np.ndarray, k: int, val_per_class: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of k training shots and min(k, val_per_class) validation images per class, in
    a random permutation of each class (for features without image identities: the
    benchmarks on published features)."""
    parts = [_split_class(rng.permutation(np.flatnonzero(labels == c)), k, val_per_class) for c in np.unique(labels)]
    return np.concatenate([t for t, _ in parts]), np.concatenate([v for _, v in parts])


def rank_keys(ids: list[str], seed: int) -> np.ndarray:
    """Seed `seed`'s rank of each image: a hash of (seed, its id), uniform and independent
    of the other images."""
    return np.array([int.from_bytes(hashlib.sha256(f"{seed}\0{i}".encode()).digest()[:8], "big") for i in ids],
                    dtype=np.uint64)


def draw_ranked(labels: np.ndarray, keys: np.ndarray, k: int, val_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """As `draw_shots`, each class in the order of `keys` (`rank_keys`): the stable draw."""
    parts = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        parts.append(_split_class(idx[np.argsort(keys[idx], kind="stable")], k, val_per_class))
    return np.concatenate([t for t, _ in parts]), np.concatenate([v for _, v in parts])


def _test_accuracy(head, x: np.ndarray, y: np.ndarray) -> float:
    return accuracy(head.predict_proba(x), y)


def fit_plan(heads: list[str], ks: list, seeds: int) -> list[tuple]:
    """The (k, seed, head) fits of a curve. At k = "all" the training and validation images
    are the split stage's, the same for every seed, so a deterministic head is fitted once
    there; a stochastic one (its result depends on the seed) once per seed."""
    return [(k, seed, name) for k in ks for seed in range(seeds) for name in heads
            if k != "all" or seed == 0 or HEADS[name].stochastic]


def fit_processes(workers, n_fits: int) -> int:
    """`auto`: one process per core this process may use (`os.sched_getaffinity`), at most
    one per fit; a number: that many (0 and 1: fit in this process)."""
    if workers == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(cores, n_fits))
    return max(1, min(int(workers), n_fits))


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray)
                 else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()


def code_version() -> str:
    """What else decides a fit: the source of the heads and of this module, and the versions
    of the libraries they fit with."""
    sources = sorted(Path(__file__).parent.joinpath("heads").glob("*.py")) + [Path(__file__)]
    libs = {name: metadata.version(name) for name in ("torch", "numpy", "scikit-learn")}
    return _digest([p.read_text() for p in sources], libs)


class Fits:
    """The data of one curve's fits, and what a fit does with it: draw its shots (`draw`),
    key it for the fit cache (`key`), fit and score it (`fit`). Held by `shots_curve` for one
    call; forked workers get it when they start (inherited through fork, not pickled) and
    keep it as their process's one job (`_fits_of_this_worker`)."""

    def __init__(self, train: FeatureSet, val: FeatureSet, test: FeatureSet, text_features: np.ndarray,
                 logit_scale: float, head_params: dict, val_per_class: int):
        pool_ids = [*(train.paths or [f"train#{i}" for i in range(len(train.labels))]),
                    *(val.paths or [f"val#{i}" for i in range(len(val.labels))])]
        self.train, self.val, self.test = train, val, test
        self.text_features, self.logit_scale = text_features, logit_scale
        self.head_params, self.val_per_class = head_params, val_per_class
        self.pool = FeatureSet(np.concatenate([train.features, val.features]),
                               np.concatenate([train.labels, val.labels]), train.classes, pool_ids, train.model,
                               train.model_sha256)
        self.keys: dict[int, np.ndarray] = {}  # per seed: the ranking keys of the pool's images
        self.context = ""  # what every fit's cache key shares (set when there is a cache)

    def draw(self, k, seed: int) -> tuple[FeatureSet, FeatureSet]:
        """The training and validation images of (k, seed): drawn afresh for every fit (a sort
        per class, microseconds), the same for every head."""
        if k == "all":
            return self.train, self.val
        if seed not in self.keys:
            self.keys[seed] = rank_keys(self.pool.paths, seed)
        ti, vi = draw_ranked(self.pool.labels, self.keys[seed], int(k), self.val_per_class)
        return _rows(self.pool, ti), _rows(self.pool, vi)

    def key(self, name: str, seed: int, tr: FeatureSet, va: FeatureSet) -> str:
        """The fit cache's key of a fit: `context`, its head, params and seed (where the head
        uses one), and the features it is drawn (`draw`)."""
        return _digest(self.context, name, self.head_params.get(name), seed if HEADS[name].uses_seed else None,
                       tr.features, tr.labels, va.features, va.labels)

    def row(self, task: tuple, tr: FeatureSet, acc: float, seconds: float) -> dict:
        """A fit's row of the curve (`shots_curve`), trained on `tr`."""
        k, seed, name = task
        return {"head": name, "k": str(k), "seed": seed, "shots": len(tr.labels) / self.text_features.shape[0],
                "acc": acc, "seconds": seconds}

    def fit(self, task: tuple) -> dict:
        """One fit of the plan, (k, seed, head name): its row of the curve."""
        k, seed, name = task
        tr, va = self.draw(k, seed)
        head = make_head(name, self.head_params.get(name), text_features=self.text_features,
                         logit_scale=self.logit_scale, seed=seed)
        start = time.perf_counter()
        head.fit(tr.features, tr.labels, va.features, va.labels, n_classes=self.text_features.shape[0])
        acc = _test_accuracy(head, self.test.features, self.test.labels)
        return self.row(task, tr, acc, time.perf_counter() - start)


_fits_of_this_worker: Fits | None = None  # set only in a forked fitting process, by its initializer


def _start_worker(fits: Fits) -> None:
    global _fits_of_this_worker
    _fits_of_this_worker = fits
    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def _fit_in_worker(task: tuple) -> dict:
    return _fits_of_this_worker.fit(task)


def shots_curve(train: FeatureSet, val: FeatureSet, test: FeatureSet, text_features: np.ndarray,
                logit_scale: float, heads: list[str], head_params: dict, ks: list, seeds: int,
                val_per_class: int, progress=None, workers=1, cache: FitCache | None = None) -> list[dict]:
    """One row per fit of `fit_plan`, in its order (head, k, seed: test accuracy, mean shots
    per class, seconds to fit, and `cached`: read from `cache`), then one zero-shot row per k
    (not a fit: its seconds are 0).

    Every fit runs on one thread (`one_thread`). `workers` > 1 fits in that many processes
    forked from this one (`fit_processes`); every fit draws its own shots from (k, seed)
    and seeds its own training, so the rows are the same whatever the number of processes,
    and whether they come from `cache` or not."""
    plan = fit_plan(heads, ks, seeds)
    fits = Fits(train, val, test, text_features, logit_scale, head_params, val_per_class)
    rows: list = [None] * len(plan)
    keys: dict[int, str] = {}
    if cache is not None:
        fits.context = _digest(code_version(), test.features, test.labels, text_features, float(logit_scale))
        for i, (k, seed, name) in enumerate(plan):
            tr, va = fits.draw(k, seed)
            keys[i] = fits.key(name, seed, tr, va)
            row = cache.get(keys[i])
            if row is not None:
                rows[i] = {**fits.row(plan[i], tr, row["acc"], row["seconds"]), "cached": True}
                if progress:
                    progress()
    todo = [i for i in range(len(plan)) if rows[i] is None]
    for i, row in _fit_all(fits, [plan[i] for i in todo], todo, fit_processes(workers, len(todo)), heads, progress):
        rows[i] = {**row, "cached": False}
        if cache is not None:
            cache.put(keys[i], row)
    zs = _test_accuracy(ZeroShotHead(text_features, logit_scale), test.features, test.labels)
    rows += [{"head": "zero-shot", "k": str(k), "seed": 0, "shots": 0.0, "acc": zs, "seconds": 0.0, "cached": False}
             for k in ks]
    return rows


def _fit_all(fits: Fits, tasks: list[tuple], index: list[int], workers: int, heads: list[str], progress):
    """(index, row) of every task, in this process or in `workers` forked ones."""
    if not tasks:  # (every row from the cache: nothing to import either)
        return
    if workers == 1:
        with one_thread(fit_imports(heads)):
            for i, task in zip(index, tasks):
                yield i, fits.fit(task)
                if progress:
                    progress()
        return
    # fork: the workers inherit the features and the imported modules (what the fits import on
    # first use too: imported here once, not once per worker); the slowest fits (most shots)
    # go first so that no process is left with a long one at the end
    preload(fit_imports(heads))
    order = sorted(range(len(tasks)), key=lambda j: -_cost(tasks[j]))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_worker, initargs=(fits,)) as pool:
        futures = {pool.submit(_fit_in_worker, tasks[j]): index[j] for j in order}
        for future in as_completed(futures):
            yield futures[future], future.result()
            if progress:
                progress()


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


def curve_records(summary: dict, beyond=()) -> list[dict]:
    """`summarize`'s table as plot records, one per head and k: `head`, `k` ("1", ..., "all"),
    `shots` (mean training shots per class; the x of the plot), `acc` and `std` over seeds;
    then, for each shot count of `beyond` (more than any class has: not fitted), one record
    per head that says `"as": "all"` and has no figures (the plot leaves it out)."""
    return [{"head": head, "k": k, "shots": round(v["shots"], 3), "acc": round(v["mean"], 5),
             "std": round(v["std"], 5), "seeds": v["seeds"]}
            for head, by_k in summary.items() for k, v in by_k.items()] + \
        [{"head": head, "k": str(k), "as": "all"} for k in beyond for head in summary]


HEADLINE_KS = ("1", "4", "16", "all")  # the shot counts of the curve that become DVC metrics


def curve_metrics(records: list[dict], head: str) -> dict:
    """The headline figures of the shots curve: `head`'s mean test accuracy at the shot
    counts of HEADLINE_KS that the curve has (`k01`, `k04`, `k16`, `k_all`: names that sort
    in shot order; the whole curve stays plot data), or "all" for a shot count more than any
    class has, and zero-shot's, from `curve_records`; {} when `head` was not in the curve."""
    mine = {("k_all" if r["k"] == "all" else f"k{int(r['k']):02d}"): r.get("acc", r.get("as")) for r in records
            if r["head"] == head and r["k"] in HEADLINE_KS}
    zero = [r["acc"] for r in records if r["head"] == "zero-shot" and "acc" in r]
    return {**dict(sorted(mine.items())), "zero_shot": zero[0]} if mine and zero else {}
