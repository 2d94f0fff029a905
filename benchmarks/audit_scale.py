"""Scale: duplicate search and label-next suggestions over a large pool of features.

Synthetic L2-normalised features (512 wide, `--classes` Gaussian clusters, some exact and
perturbed copies planted): times `fewclip.audit.find_duplicates` within the pool (features
only; pixel fingerprints scale the same way, in blocks) and `fewclip.suggest.label_next`
(the pool against a labelled set of 10 per class, 20 picks; and a cold start without
labels), with the peak resident memory after each.

    python benchmarks/audit_scale.py [--n 100000] [--classes 100]
"""

import argparse
import resource
import time

import numpy as np

from fewclip.audit.duplicates import Photos, find_duplicates
from fewclip.suggest import label_next


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.classes, args.dim)).astype(np.float32)
    y = rng.integers(0, args.classes, args.n)
    X = centres[y] + 1.5 * rng.normal(size=(args.n, args.dim)).astype(np.float32)
    planted = rng.choice(args.n, 50, replace=False)
    X[planted[:25]] = X[planted[:25] - 1]  # exact copies of their neighbour row, in its class
    X[planted[25:]] = X[planted[25:] - 1] + 0.05 * rng.normal(size=(25, args.dim)).astype(np.float32)
    y[planted] = y[planted - 1]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    print(f"{args.n} features, {args.dim} wide, {args.classes} classes; {X.nbytes / 2**20:.0f} MB; "
          f"peak so far {peak_mb():.0f} MB")

    start = time.perf_counter()
    found, floor = find_duplicates({"train": Photos(X, [str(i) for i in range(args.n)], list(y))})
    hit = {int(d.path) for d in found}
    print(f"find_duplicates within the pool: {time.perf_counter() - start:.1f}s, {len(found)} duplicates "
          f"({len(hit & set(planted.tolist()))} of {len(planted)} planted found), feature threshold {floor:.4f}; "
          f"peak {peak_mb():.0f} MB")

    labelled = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(args.classes)])
    pool = np.setdiff1d(np.arange(args.n), labelled)
    start = time.perf_counter()
    picks = label_next(X[pool], X[labelled], y[labelled], 20, n_classes=args.classes)
    print(f"label_next, {len(pool)} pool photos against {len(labelled)} labelled, 20 picks: "
          f"{time.perf_counter() - start:.1f}s ({len(set(y[pool[picks]]))} classes); peak {peak_mb():.0f} MB")
    start = time.perf_counter()
    picks = label_next(X, np.zeros((0, args.dim), np.float32), np.zeros(0, int), 20, n_classes=args.classes)
    print(f"label_next cold start (no labels, no text), 20 picks: {time.perf_counter() - start:.1f}s "
          f"({len(set(y[picks]))} classes); peak {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
