"""Why a head left (or kept) zero-shot: its validation choice against the test outcome.

Run by hand on the shared real CLIP features, e.g.

    python benchmarks/selection_check.py ../shared/datasets/clip-features pets-24 1 zs-linear tip-adapter-f

For each head: the candidate its selection rule chose, the validation images on which that
candidate and the prior (zero-shot) disagree (wins, losses, the paired z-score
(w - l - 1) / sqrt(w + l) that `fewclip.heads.choose` compares with SELECTION_Z), and the
same wins and losses of the fitted head against zero-shot on the test images. Heads with
randomness run with seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fewclip.heads as heads
from heads_real import shared_tasks


def wins_losses(correct: np.ndarray, prior: np.ndarray) -> tuple[int, int]:
    return int((correct & ~prior).sum()), int((~correct & prior).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="the shared clip-features folder")
    ap.add_argument("set", help="a set with text features: imagenet or pets-24")
    ap.add_argument("k", help="shots per class")
    ap.add_argument("heads", nargs="+", help="text-prior heads")
    args = ap.parse_args()
    task = next(iter(shared_tasks(args.folder, {args.set})), None)
    if task is None or task.text is None:
        raise SystemExit(f"{args.set}: not found in {args.folder}, or it has no text features")
    k = int(args.k)
    (x, y), (xv, yv), (xt, yt) = task.train[k], task.val[k], task.test
    zero_val = (xv @ task.text.T).argmax(1) == yv
    zero_test = (xt @ task.text.T).argmax(1) == yt
    print(f"{task.name}, {k} shot(s): zero-shot {100 * zero_val.mean():.1f}% on validation ({len(yv)} images), "
          f"{100 * zero_test.mean():.1f}% on test ({len(yt)} images)")

    for name in args.heads:
        head = heads.make_head(name, None, task.text, task.logit_scale).fit(x, y, xv, yv, n_classes=task.n_classes)
        choice = head.selection_  # what the selection rule saw: the best candidate against the prior
        tw, tl = wins_losses(head.predict_proba(xt).argmax(1) == yt, zero_test)
        print(f"{name}: chose {choice.chosen} (best on validation {choice.best}, prior {choice.prior}); best against "
              f"the prior on validation {choice.wins} won, {choice.losses} lost (z {choice.z:.2f}, "
              f"{100 * (choice.wins - choice.losses) / len(yv):+.1f} points); the fitted head against zero-shot "
              f"on test {tw} won, {tl} lost ({100 * (tw - tl) / len(yt):+.1f} points)")


if __name__ == "__main__":
    main()
