"""Export the trained classifier as one ONNX file, from preprocessed photo pixels to class
probabilities, for running without this repository, torch or the backbone's checkpoint
(`fewclip.onnx_classifier` reads it back: `python -m fewclip.predict --onnx`).

    python -m fewclip.export classifier.onnx
    python -m fewclip.export classifier.onnx --add-class "fire engine" --add-class tractor
    python -m fewclip.export classifier-int8.onnx --int8     # a quarter of the size, faster on CPUs

The graph is the backbone's image encoder, the head, and the novel classes (`classes.novel`
and each `--add-class`, scored zero-shot as `predict` scores them: `fewclip.openvocab`),
in fp32, or with `--int8` onnxruntime's dynamic int8 quantization of the matrix products
(weights per output channel, activations per batch; benchmarks/README.md measures both).
The file carries the class names, the preprocessing, the backbone's identity and the head
as metadata (the format: `fewclip.onnx_classifier`). Every head exports: each predicts with
torch operations on the features (`Head.logits`). Needs the `[onnx]` extra (`pip install
-e '.[onnx]'`: onnx and onnxscript for torch's exporter, onnxruntime for `--int8`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from . import UserError
from .cache import file_sha256
from .onnx_classifier import FORMAT, FORMAT_VERSION, INSTALL, RESIZE_RULE

OPSET = 18


class ClassifierGraph(torch.nn.Module):
    """Pixels (n, 3, R, R) to (probabilities over `clf.classes`, L2-normalised features)."""

    def __init__(self, encoder: torch.nn.Module, clf):
        super().__init__()
        self.encoder, self.clf = encoder, clf

    def forward(self, pixels: torch.Tensor):
        features = self.encoder(pixels)
        return self.clf.proba(features), features


def metadata(backbone, clf, saved: dict, classifier: str | Path) -> dict:
    """The file's metadata (`fewclip.onnx_classifier`), as plain values."""
    head = clf.head
    params = {k: v for k, v in head.get_params().items() if isinstance(v, (bool, int, float, str, type(None)))
              or (isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str)) for x in v))}
    return {
        "fewclip.format": FORMAT, "fewclip.format_version": FORMAT_VERSION,
        "classes": list(clf.classes), "novel": list(clf.novel),
        "preprocessing": {"resolution": int(backbone.resolution), "mean": [float(m) for m in backbone.mean],
                          "std": [float(s) for s in backbone.std], "resize": RESIZE_RULE},
        "backbone": {"model": saved["model"], "sha256": backbone.sha256, "family": backbone.family,
                     "precision": "fp32", "dim": int(backbone.dim)},
        "head": {"name": head.name, "mode": saved.get("mode", "few"), "params": params},
        "classifier": {"path": str(classifier), "sha256": file_sha256(classifier)},
    }


def export_onnx(backbone, clf, path: str | Path, meta: dict, int8: bool = False) -> Path:
    """Write `backbone`'s image encoder and the classifier `clf` (a `fewclip.openvocab.
    OpenVocabulary`) as one ONNX file at `path`, with `meta` as its metadata, in fp32 or,
    `int8`, dynamically quantized (`quantize_int8`); written to a temporary file first, so
    `path` is either the whole new file or untouched."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as e:
        raise UserError(f"export needs {e.name}, which is not installed: {INSTALL}") from None
    if backbone.resize != RESIZE_RULE:
        raise UserError(f"{backbone.name}: its preprocessing ({backbone.resize}) is not one the ONNX file can "
                        f"describe ({RESIZE_RULE})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = ClassifierGraph(backbone.image_encoder(), clf).eval()
    r = int(backbone.resolution)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (torch.zeros(2, 3, r, r),), str(tmp), input_names=["pixels"],
                              output_names=["probabilities", "features"], opset_version=OPSET, dynamo=True,
                              dynamic_shapes=({0: torch.export.Dim("n", min=1)},), external_data=False,
                              verbose=False)
        if int8:
            quantize_int8(tmp)
            meta = {**meta, "backbone": {**meta["backbone"], "precision": INT8}}
        model = onnx.load(str(tmp))
        for key in list(meta):  # ours replaced; other tools' entries (a quantizer's) kept
            for i in reversed([i for i, prop in enumerate(model.metadata_props) if prop.key == key]):
                del model.metadata_props[i]
            model.metadata_props.add(key=key, value=json.dumps(meta[key], ensure_ascii=False))
        model.doc_string = f"fewclip classifier over {len(meta['classes'])} classes (python -m fewclip.export)"
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        for extra in tmp.parent.glob(tmp.name + "*"):  # an exporter's side file, if it left one
            extra.unlink(missing_ok=True)
    return path


INT8 = "int8 (dynamic: int8 weights per output channel, activations per batch)"


def quantize_int8(path: Path) -> None:
    """Quantize the ONNX file at `path` in place: onnxruntime's `quantize_dynamic`, int8
    weights per output channel for the matrix products, their inputs quantized batch by
    batch at run time; the rest stays fp32."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.name + ".int8")
    logging.disable(logging.WARNING)  # its advice to run its pre-processing first (measured without)
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    os.replace(out, path)


# the library's setting names, as this command's flags (fewclip.pipeline.runner.run)
FLAGS = {"model": "--model", "templates": "the classifier's templates"}


def main(argv: list[str] | None = None) -> int:
    from .backbone import load_backbone, model_sha256
    from .inference import add_classes, check_backbone
    from .openvocab import load_classifier

    ap = argparse.ArgumentParser(prog="python -m fewclip.export", description=__doc__.split("\n")[0])
    ap.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    ap.add_argument("--classifier", default="models/classifier.pt", help="the train stage's artefact")
    ap.add_argument("--add-class", action="append", default=[], metavar="NAME",
                    help="also a novel class by name (repeatable)")
    ap.add_argument("--model", help="the backbone (name or checkpoint path); default: the one it was trained with")
    ap.add_argument("--cache-dir", default="~/.cache/clip", help="where named CLIP models are looked for")
    ap.add_argument("--int8", action="store_true",
                    help="quantize to int8 (dynamic): a quarter of the size, about 2.5x onnxruntime's fp32 speed on "
                         "this project's 2-core CPU; probabilities no longer within 1e-4 of predict's")
    args = ap.parse_args(argv)
    if not args.out.endswith(".onnx"):
        raise UserError(f"{args.out}: the file to write must end in .onnx")

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    clf, saved = load_classifier(args.classifier)
    model = args.model or saved["model"]
    sha256 = model_sha256(model)  # checked before the weights load
    check_backbone(sha256, model, saved, args.classifier)
    backbone = load_backbone(model, "cpu", args.cache_dir, sha256, precision="fp32")
    clf = add_classes(clf, args.add_class, backbone, saved["templates"], warn, args.classifier)
    out = export_onnx(backbone, clf, args.out, metadata(backbone, clf, saved, args.classifier), int8=args.int8)
    print(f"export: {len(clf.classes)} classes ({len(clf.novel)} novel), head {clf.head.name}, {saved['model']} "
          f"at {backbone.resolution}px, {'int8' if args.int8 else 'fp32'} -> {out} "
          f"({out.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
    return 0


def parity(onnx_proba: np.ndarray, torch_proba: np.ndarray) -> dict:
    """How far two sets of probabilities are apart: the largest difference, and the share of
    images whose top class differs (for the tests and the benchmark)."""
    return {"max_abs": float(np.abs(onnx_proba - torch_proba).max()) if onnx_proba.size else 0.0,
            "top1_differs": float((onnx_proba.argmax(1) != torch_proba.argmax(1)).mean()) if len(onnx_proba) else 0.0}


if __name__ == "__main__":
    from .pipeline.runner import run

    run(main, FLAGS)
