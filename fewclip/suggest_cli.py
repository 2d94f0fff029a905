"""`python -m fewclip.suggest POOL_DIR`: which unlabelled photos to label next (the rule:
`fewclip.suggest.label_next`).

    python -m fewclip.suggest ~/unsorted --n 20                      # suggest/next.csv and next.jpg
    python -m fewclip.suggest ~/unsorted --n 40 --sort-into ~/to-check

Needs the trained classifier (`models/classifier.pt`) and the embed stage's training features
(`features/train.npz`, `val.npz`: the photos labelled so far). The pool is embedded through
the feature cache, as the embed stage does (`--feature-cache`, the same default), so a second
run embeds nothing. Pool photos that duplicate a training photo (exact, pixel or feature
near-duplicates: `fewclip.audit`) are left out, with a line saying how many. Writes a CSV
(`path,predicted,probability,reason`, in the order to label them) and a contact sheet;
`--sort-into DIR` copies the chosen photos into `DIR/<predicted class>/` (copies only: the
pool is never changed), so that only the wrong ones need moving before they join the
training folders. Unreadable files are named and skipped, as in embed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from . import UserError
from .audit import find_duplicates, photos
from .backbone import LazyBackbone, resolve_device
from .cache import FeatureCache, NoCache, pixels_identity
from .data import find_images
from .embedding import embed_cached, resolve_workers
from .features import load_features
from .inference import check_backbone, saved_precision
from .openvocab import load_classifier
from .sheets import contact_sheet, sheet_format
from .suggest import copy_into, rank, reasons


# the library's setting names, as this command's flags (fewclip.pipeline.runner.run)
FLAGS = {"device": "--device", "model": "--model", "batch_size": "--batch-size"}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fewclip.suggest", description=__doc__.split("\n")[0])
    ap.add_argument("pool", nargs="+", help="folders (or files) of unlabelled photos")
    ap.add_argument("--n", type=int, default=20, help="how many to suggest (default 20)")
    ap.add_argument("--sort-into", metavar="DIR", help="copy the chosen photos into DIR/<predicted class>/")
    ap.add_argument("--classifier", default="models/classifier.pt")
    ap.add_argument("--features", default="features", help="the embed stage's folder: the labelled photos")
    ap.add_argument("--out", default="suggest/next.csv")
    ap.add_argument("--contact-sheet", default="suggest/next.jpg", metavar="FILE.jpg")
    ap.add_argument("--model", help="the backbone (name or checkpoint path); default: the classifier's")
    ap.add_argument("--feature-cache", default="~/.cache/fewclip/features", help="'' for none")
    ap.add_argument("--cache-dir", default="~/.cache/clip", help="where named CLIP models are looked for")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.n < 1:
        raise UserError(f"--n {args.n}: must be at least 1")
    try:
        sheet_format(args.contact_sheet)
    except ValueError as e:
        raise UserError(f"--contact-sheet {e}") from None
    if not Path(args.classifier).is_file():
        raise UserError(f"{args.classifier}: no trained classifier (run `dvc repro train`)")
    clf, saved = load_classifier(args.classifier)

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    found = find_images(args.pool, warn)
    for missing in found.missing:
        warn(f"{missing}: no such file or folder")
    if not found.paths:
        raise UserError("no image in the pool " + ", ".join(args.pool))
    labelled = [load_features(Path(args.features) / f"{s}.npz") for s in ("train", "val")]
    if labelled[0].model_sha256 != saved["model_sha256"]:
        raise UserError(f"{args.features}/ and {args.classifier} come from different backbones; run `dvc repro`")
    backbone = LazyBackbone(args.model or saved["model"], device=args.device, download_root=args.cache_dir,
                            precision=saved_precision(saved, resolve_device(args.device), warn, args.classifier))
    check_backbone(backbone.sha256, args.model or saved["model"], saved, args.classifier)
    cache = (FeatureCache(args.feature_cache, backbone.sha256, backbone.precision_key,
                          pixels_identity("cpu", backbone.family, backbone.libraries))
             if args.feature_cache else NoCache())
    feats, errors = embed_cached(backbone, found.paths, cache, args.batch_size, resolve_workers("auto", backbone.device),
                                 desc="suggest", progress=sys.stderr.isatty(), dim=labelled[0].features.shape[1])
    for path, err in zip(found.paths, errors):
        if err:
            warn(f"{path}: skipped, {err}")
    ok = [i for i, e in enumerate(errors) if not e]
    if not ok:
        raise UserError(f"none of the {len(found.paths)} pool photos could be read")
    paths, X = [found.paths[i] for i in ok], feats[ok]

    classes = saved["classes"]
    seen, _ = photos(np.concatenate([f.features for f in labelled]), labelled[0].paths + labelled[1].paths,
                     [classes[i] for f in labelled for i in f.labels])
    # a pool photo's class, for the feature threshold's "different classes": the one predicted
    pool, _ = photos(X, paths, [classes[i] for i in clf.head.predict_proba(X).argmax(1)])
    dups, floor = find_duplicates({"train": seen, "test": pool})
    dup_of = {d.path: d.duplicate_of for d in dups if d.where == "train-test"}
    if dup_of:
        first = next(iter(dup_of.items()))
        print(f"suggest: {len(dup_of)} pool photo(s) duplicate training photos and are left out "
              f"(e.g. {first[0]} = {first[1]})", file=sys.stderr)
    keep = [i for i, p in enumerate(paths) if p not in dup_of]
    if not keep:
        raise UserError("every pool photo duplicates a training photo: nothing to suggest")
    if args.n > len(keep):
        print(f"suggest: --n {args.n} is more than the {len(keep)} pool photos left: all of them, in order",
              file=sys.stderr)
    y = np.concatenate([f.labels for f in labelled])
    text = clf.text_features[: clf.n_trained].numpy() if clf.head.needs_text else None
    picks, predicted = rank(X[keep], seen.features, y, args.n, n_classes=clf.n_trained, text_features=text,
                            seed=args.seed, duplicate=floor)
    chosen = [keep[i] for i in picks]
    proba = clf.predict_proba(X[chosen])
    pred = proba.argmax(1)
    why = reasons(predicted[picks], proba, np.bincount(y, minlength=clf.n_trained), classes)
    rows = [{"path": paths[i], "predicted": clf.classes[p], "probability": round(float(pr[p]), 4), "reason": w}
            for i, p, pr, w in zip(chosen, pred, proba, why)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["path", "predicted", "probability", "reason"])
        w.writeheader()
        w.writerows(rows)
    contact_sheet([(r["path"], f"{k + 1}. {Path(r['path']).name[:20]}\n{r['predicted']} "
                               f"{r['probability']:.0%}") for k, r in enumerate(rows)], args.contact_sheet,
                  f"The {len(rows)} photos to label next, in order (predicted class, its probability)")
    print(f"suggest: {len(rows)} of {len(keep)} pool photos to label next -> {args.out}, {args.contact_sheet}",
          file=sys.stderr)
    if args.sort_into:
        copied, same = copy_into([r["path"] for r in rows], [r["predicted"] for r in rows], args.sort_into)
        print(f"suggest: copied {copied} photos into {args.sort_into}/<predicted class>/"
              + (f" ({same} already there)" if same else "") + "; move the wrong ones, then add them to the "
              "training folders", file=sys.stderr)
    return 0
