"""Classify new photos with the trained classifier: top-k classes and probabilities per image.

    python -m fewclip.predict photos/ more/img.jpg                        # a table
    python -m fewclip.predict photos/ --format csv --top-k 3 > out.csv
    python -m fewclip.predict photos/ --add-class "fire engine" --add-class tractor --format json
    python -m fewclip.predict photos/ --contact-sheet sheet.jpg           # and a captioned picture

Needs only the train stage's artefact (`models/classifier.pt`: the head, the class names and
their text features, the prompt templates, the backbone's name and SHA-256) and that backbone
(`--model` overrides where to find it, e.g. a checkpoint file on an offline machine; its
SHA-256 must match). `--add-class NAME` adds a novel class by name without retraining: its
text features are computed from the saved templates; a name that is already a class (in
any spelling: `fire engine`, `Fire_Engine`) is not added twice. Folders are searched
recursively for image files (hidden and system entries skipped), and a file reached twice
is classified once; unreadable images and empty folders are reported on stderr, and every
other image gets its prediction. Batched, with a progress bar, on CUDA when available,
at the precision the classifier's features were computed at (`--precision` overrides).

`--onnx FILE.onnx` classifies with a file written by `python -m fewclip.export` instead,
with onnxruntime (`pip install -e '.[onnx]'`) and without importing torch: the file holds
the backbone, the head and the classes, so `--classifier`, `--model`, `--add-class`,
`--precision` and `--engine ray` do not apply to it.

Exit status: 0 when every named path existed and at least one image was classified, 1
otherwise (the images found are still classified and written).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from . import UserError
from .data import find_images
from .pipeline.runner import run
from .settings import DECODE_SETTINGS, ENGINES, PRECISIONS
from .sheets import contact_sheet, sheet_format

FORMATS = ("table", "csv", "json")


def write(rows: list[dict], fmt: str, out) -> None:
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(["path", "rank", "class", "probability"])
        for row in rows:
            for rank, p in enumerate(row["predictions"], 1):
                writer.writerow([row["path"], rank, p["class"], f"{p['probability']:.6f}"])
    else:
        width = max([len(r["path"]) for r in rows] + [5])
        for row in rows:
            preds = "  ".join(f"{p['class']} {p['probability']:.1%}" for p in row["predictions"])
            out.write(f"{row['path']:<{width}}  {preds}\n")


# the library's setting names, as this command's flags (fewclip.pipeline.runner.run)
FLAGS = {"device": "--device", "decode": "--decode", "engine": "--engine", "model": "--model",
         "batch_size": "--batch-size", "templates": "the classifier's templates", "precision": "--precision"}


def classify_torch(args, paths: list[str], warn) -> tuple[list[str], int, np.ndarray, list[str]]:
    """(classes, how many are novel, probabilities of the readable images, per path "" or
    why it was skipped) with the train stage's artefact and the backbone."""
    from .backbone import LazyBackbone, resolve_device
    from .decode import resolve_decode
    from .embedding import embed_images, resolve_workers
    from .inference import add_classes, check_backbone, saved_precision
    from .openvocab import load_classifier

    clf, saved = load_classifier(args.classifier)
    model = args.model or saved["model"]
    remote = args.engine == "ray"
    precision = args.precision or (saved_precision(saved, resolve_device(args.device), warn, args.classifier)
                                   if not remote else saved["precision"])
    # loads when used here: for --add-class, or to embed with the local engine
    backbone = LazyBackbone(model, device=args.device, download_root=args.cache_dir, remote=remote,
                            precision=precision)
    check_backbone(backbone.sha256, model, saved, args.classifier)
    clf = add_classes(clf, args.add_class, backbone, saved["templates"], warn, args.classifier)
    feats, errors = embed_images(backbone, paths, args.batch_size,
                                 resolve_workers("auto", backbone.device), desc="predict",
                                 progress=sys.stderr.isatty(),
                                 decode=(resolve_decode(args.decode, backbone.device, lambda: backbone.resize)
                                         if not remote else "cpu"),
                                 engine=args.engine, address=args.address)
    ok = [i for i, e in enumerate(errors) if not e]
    return clf.classes, len(clf.novel), clf.predict_proba(feats[ok]) if ok else np.zeros((0, 0)), errors


def classify_onnx(args, paths: list[str]) -> tuple[list[str], int, np.ndarray, list[str]]:
    """What `classify_torch` returns, with an exported file and onnxruntime (no torch)."""
    from .onnx_classifier import OnnxClassifier

    given = [flag for flag, on in (("--engine ray", args.engine == "ray"), ("--add-class", args.add_class),
                                   ("--model", args.model), ("--precision", args.precision),
                                   ("--decode gpu", args.decode == "gpu")) if on]
    if given:
        raise UserError(f"--onnx runs its file as it is, on this machine's CPU with onnxruntime: {given[0]} does "
                        "not apply (export the classifier again with what it should hold: python -m fewclip.export)")
    onnx = OnnxClassifier(args.onnx)
    errors, proba = [], []
    for start in range(0, len(paths), max(1, args.batch_size)):
        loaded = [onnx.load(p) for p in paths[start:start + max(1, args.batch_size)]]
        errors += [err for _, err in loaded]
        pixels = [x for x, err in loaded if not err]
        if pixels:
            proba.append(onnx.predict_proba(np.stack(pixels)))
    return onnx.classes, len(onnx.novel), np.concatenate(proba) if proba else np.zeros((0, 0)), errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fewclip.predict", description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files and/or folders")
    ap.add_argument("--classifier", default="models/classifier.pt", help="the train stage's artefact")
    ap.add_argument("--onnx", metavar="FILE.onnx", help="classify with this exported file and onnxruntime instead "
                    "(python -m fewclip.export; pip install -e '.[onnx]'); no torch")
    ap.add_argument("--model", help="the backbone (name or checkpoint path); default: the one it was trained with")
    ap.add_argument("--add-class", action="append", default=[], metavar="NAME",
                    help="a novel class by name (repeatable)")
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--format", choices=FORMATS, default="table")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=PRECISIONS,
                    help="the image encoder's arithmetic; default: that of the classifier's training features")
    ap.add_argument("--decode", choices=DECODE_SETTINGS, default="auto",
                    help="where JPEGs are decoded: auto (on the GPU when on CUDA), cpu, gpu")
    ap.add_argument("--engine", choices=ENGINES, default="local",
                    help="local, or ray: embed on a Ray cluster (pip install -e '.[ray]')")
    ap.add_argument("--address", help="the Ray cluster (host:port; default: $RAY_ADDRESS, else a local Ray)")
    ap.add_argument("--cache-dir", default="~/.cache/clip", help="where named CLIP models are looked for")
    ap.add_argument("--contact-sheet", metavar="FILE.jpg",
                    help="also draw the classified photos, captioned with the top class and its probability "
                         "(.jpg, .png or .webp)")
    ap.add_argument("--sheet-size", type=int, default=60, metavar="N",
                    help="at most N photos on the contact sheet, the least confident first (default 60)")
    args = ap.parse_args(argv)

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    if args.contact_sheet:
        try:
            sheet_format(args.contact_sheet)
        except ValueError as e:
            raise UserError(f"--contact-sheet {e}") from None
    found = find_images(args.inputs, warn)
    paths = found.paths
    if not paths:
        raise UserError("no image to classify in " + ", ".join(args.inputs))
    classes, n_novel, proba, errors = (classify_onnx(args, paths) if args.onnx
                                       else classify_torch(args, paths, warn))
    ok = [i for i, e in enumerate(errors) if not e]
    for path, err in zip(paths, errors):
        if err:
            warn(f"{path}: skipped, {err}")
    rows = []
    k = max(1, min(args.top_k, len(classes)))
    for i, p in zip(ok, proba):
        top = p.argsort()[::-1][:k]
        rows.append({"path": paths[i], "predictions": [
            {"class": classes[j], "probability": round(float(p[j]), 6)} for j in top]})
    write(rows, args.format, sys.stdout)
    if args.contact_sheet:
        chosen = sorted(rows, key=lambda r: (r["predictions"][0]["probability"], r["path"]))[: max(0, args.sheet_size)]
        contact_sheet([(r["path"], f"{Path(r['path']).name[:24]}\n{r['predictions'][0]['class']} "
                                   f"{r['predictions'][0]['probability']:.1%}") for r in chosen],
                      args.contact_sheet, f"{len(chosen)} of {len(rows)} classified photos, the least confident "
                      "first (top class, its probability)")
        print(f"predict: contact sheet of {len(chosen)} photos -> {args.contact_sheet}", file=sys.stderr)
    print(f"predict: {len(rows)} of {len(paths)} images classified over {len(classes)} classes "
          f"({n_novel} novel)" + (f" with {args.onnx} (onnxruntime)" if args.onnx else "")
          + (f"; {len(paths) - len(rows)} skipped" if len(rows) < len(paths) else ""),
          file=sys.stderr)
    if not rows:
        raise UserError("no image could be read")
    if found.missing:
        print(f"error: {len(found.missing)} named path(s) do not exist: {', '.join(found.missing)} "
              "(the images found were classified)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run(main, FLAGS)
