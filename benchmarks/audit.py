"""Suspect labels on real CLIP features: injected label noise, the audit's ranking against
plain logistic regression and cleanlab's default, side by side in one run.

For each set of ../shared/datasets/clip-features (real CLIP ViT-B/32 features), the 16-shot
training set gets 10% label noise, two ways:
  symmetric    a random other class;
  confusable   the nearest other class by the clean class means (a truck photo in `car/`).
Rankings, most suspect first:
  audit        `fewclip.audit.suspect_labels` with the pipeline's default head (gda), 10 folds;
  lr           out-of-fold self-confidence of plain logistic regression (scikit-learn, C=10, 5 folds);
  cleanlab     `cleanlab.filter.find_label_issues` on those same probabilities (its default):
               the photos it flags (its count, not k), ranked by self-confidence.
Figures (mean over seeds): AUROC of the ranking, P@k (precision among the top k, k the
number of wrong labels); for cleanlab the precision and recall of what it flags; and the test
accuracy of the gda head trained after removing the top k suspects (cleanlab: what it
flags), against no removal and against removing exactly the wrong labels.

    pip install cleanlab   # for the side-by-side; without it that column is left out
    python benchmarks/audit.py [--seeds 5] [--sets caltech101 oxford_flowers oxford_pets ucf101 fgvc]
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from fewclip.audit.labels import suspect_labels
from fewclip.heads import make_head, one_thread

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clip-features"
SETS = ["caltech101", "oxford_flowers", "oxford_pets", "ucf101", "fgvc"]


def load(name: str) -> dict:
    with np.load(DATA / f"vitb32_{name}.npz") as z:
        d = {k: z[k] for k in z.files}
    for k in list(d):
        if k.endswith("_x"):
            x = d[k].astype(np.float32)
            d[k] = x / np.linalg.norm(x, axis=1, keepdims=True)
        elif k.endswith("_y"):
            d[k] = d[k].astype(np.int64)
    return d


def add_noise(X, y, n_classes, kind, rng, rate=0.1):
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    noisy = y.copy()
    if kind == "symmetric":
        shift = rng.integers(1, n_classes, len(idx))
        noisy[idx] = (y[idx] + shift) % n_classes
    else:
        means = np.stack([X[y == c].mean(0) for c in range(n_classes)])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        S = means @ means.T
        np.fill_diagonal(S, -np.inf)
        noisy[idx] = S.argmax(1)[y[idx]]
    wrong = np.zeros(len(y), bool)
    wrong[idx] = True
    return noisy, wrong


def auroc(score, wrong) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(wrong, score))


def lr_out_of_fold(X, y, n_classes, seed, folds=5):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    P = np.zeros((len(y), n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
            m = LogisticRegression(C=10, max_iter=1000).fit(X[tr], y[tr])
            P[np.ix_(te, m.classes_)] = m.predict_proba(X[te])
    return P


def test_acc(X, y, keep, d, n_classes) -> float:
    head = make_head("gda").fit(X[keep], y[keep], n_classes=n_classes)
    return float((head.predict_proba(d["test_x"]).argmax(1) == d["test_y"]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sets", nargs="+", default=SETS)
    ap.add_argument("--json", help="also write every figure here")
    args = ap.parse_args()
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        find_label_issues = None
        print("cleanlab is not installed (pip install cleanlab): its column is left out")
    out = {}
    with one_thread(["sklearn.covariance", "sklearn.linear_model"]):
        for name in args.sets:
            d = load(name)
            X, y = d["train16_x"], d["train16_y"]
            C = int(y.max()) + 1
            for kind in ("symmetric", "confusable"):
                rows = []
                for seed in range(args.seeds):
                    noisy, wrong = add_noise(X, y, C, kind, np.random.default_rng(seed))
                    k = int(wrong.sum())
                    t = time.perf_counter()
                    s = suspect_labels(lambda settings: make_head("gda", settings), X, noisy, C, folds=10, seed=seed)
                    secs = time.perf_counter() - t
                    audit_score = np.nan_to_num(s.score, nan=-np.inf)
                    P = lr_out_of_fold(X, noisy, C, seed)
                    lr_score = -P[np.arange(len(y)), noisy]
                    r = {"audit_auroc": auroc(audit_score, wrong), "audit_p": float(wrong[s.order[:k]].mean()),
                         "lr_auroc": auroc(lr_score, wrong), "lr_p": float(wrong[np.argsort(-lr_score)[:k]].mean()),
                         "acc_noisy": test_acc(X, noisy, np.ones(len(y), bool), d, C),
                         "acc_oracle": test_acc(X, noisy, ~wrong, d, C), "audit_seconds": secs}
                    keep = np.ones(len(y), bool)
                    keep[s.order[:k]] = False
                    r["acc_audit"] = test_acc(X, noisy, keep, d, C)
                    if find_label_issues is not None:
                        flagged = find_label_issues(noisy, P)
                        r.update(cl_flagged=int(flagged.sum()), cl_precision=float(wrong[flagged].mean()),
                                 cl_recall=float(flagged[wrong].mean()),
                                 acc_cleanlab=test_acc(X, noisy, ~flagged, d, C))
                    rows.append(r)
                mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
                out[f"{name}/{kind}"] = mean
                cl = (f" | cleanlab flags {mean['cl_flagged']:.0f}: precision {mean['cl_precision']:.3f} recall "
                      f"{mean['cl_recall']:.3f}, acc after {mean['acc_cleanlab']:.3f}" if "cl_flagged" in mean else "")
                print(f"{name:15s} {kind:10s} k={k:3d} | audit AUROC {mean['audit_auroc']:.3f} P@k {mean['audit_p']:.3f} "
                      f"({mean['audit_seconds']:.1f}s) | lr AUROC {mean['lr_auroc']:.3f} P@k {mean['lr_p']:.3f} | "
                      f"test acc noisy {mean['acc_noisy']:.3f}, audit top-k removed {mean['acc_audit']:.3f}, "
                      f"true errors removed {mean['acc_oracle']:.3f}{cl}", flush=True)
    main4 = [s for s in args.sets if s != "fgvc"]
    for kind in ("symmetric", "confusable"):
        keys = [f"{s}/{kind}" for s in main4 if f"{s}/{kind}" in out]
        if keys:
            avg = {m: np.mean([out[k][m] for k in keys]) for m in ("audit_auroc", "audit_p", "lr_auroc", "lr_p")}
            print(f"mean of {', '.join(main4)} ({kind}): audit AUROC {avg['audit_auroc']:.3f} P@k {avg['audit_p']:.3f}; "
                  f"lr AUROC {avg['lr_auroc']:.3f} P@k {avg['lr_p']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
