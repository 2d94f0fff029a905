"""The exported classifier (`python -m fewclip.export`) against `predict`'s torch path, in
one run: parity on the reference photos, images per second, and int8 variants.

Part 1, for each architecture (random weights of the full published architecture, a gda
head fitted on its features of the reference training photos, `bench` added by name):
  - parity: the ONNX file's probabilities against `OpenVocabulary.predict_proba` on the same
    photos' fp32 features (largest difference, share of photos whose top class differs);
  - images per second end to end (read, decode, preprocess, run) and of the bare forward on
    ready batches: torch at fp32 and at `auto`'s precision here, onnxruntime at fp32, and
    onnxruntime on int8 variants of the same file: `dynamic` (onnxruntime's
    `quantize_dynamic`: int8 weights, activations quantized on the fly) and weight-only
    int8 (`MatMulNBits`, 8 bits, blocks of 32, accuracy level 1: fp32 arithmetic; level 4:
    int8 arithmetic).
Part 2, the tiny world (a tiny CLIP trained for about a minute, as the tests do): the
tests' six classes with 10 training photos each, and at its hardest, all 24 colour-shape
classes with 2 each; 40 test photos per class: the test accuracy of the fp32 file and of
each int8 variant (which `export --int8` needs within one point), and how often an int8
file's top class is the fp32 file's.

    python benchmarks/onnx_speed.py --archs ViT-B/32 --json benchmarks/results/onnx_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny world (synthetic)

from fewclip.backbone import load_backbone, resolve_precision  # noqa: E402
from fewclip.data import scan_folder  # noqa: E402
from fewclip.embedding import embed_images  # noqa: E402
from fewclip.export import export_onnx, metadata, parity  # noqa: E402
from fewclip.heads import make_head  # noqa: E402
from fewclip.onnx_classifier import OnnxClassifier  # noqa: E402
from fewclip.openvocab import OpenVocabulary  # noqa: E402
from fewclip.pixels import load_rgb  # noqa: E402
from fewclip.prompts import text_classifier  # noqa: E402
from random_checkpoint import random_clip, save_state_dict  # noqa: E402

TEMPLATES = ["a photo of a {}."]


def int8_variants(path: Path) -> dict[str, Path]:
    """The int8 files made from the fp32 file at `path`, by name."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    import logging

    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("onnxruntime"):
            logging.getLogger(name).setLevel(logging.WARNING)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = path.with_name(path.stem + "-dynamic.onnx")
        quantize_dynamic(str(path), str(dynamic), weight_type=QuantType.QInt8, per_channel=True)
        out["int8 dynamic"] = dynamic
        import onnx

        for level in (1, 4):
            q = MatMulNBitsQuantizer(onnx.load(str(path)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=level)
            q.process()
            target = path.with_name(path.stem + f"-w8a{level}.onnx")
            q.model.save_model_to_file(str(target), use_external_data_format=False)
            out[f"int8 weights, level {level}"] = target
    return out


def onnx_rates(path: Path, paths: list[str], batch: int) -> tuple[float, float, np.ndarray]:
    """(end-to-end images/s, bare forward images/s, probabilities of all `paths`)."""
    oc = OnnxClassifier(path)
    oc.predict_proba(np.stack([oc.load(p)[0] for p in paths[:batch]]))  # warm-up
    start = time.perf_counter()
    proba = []
    for i in range(0, len(paths), batch):
        proba.append(oc.predict_proba(np.stack([oc.load(p)[0] for p in paths[i:i + batch]])))
    e2e = len(paths) / (time.perf_counter() - start)
    ready = np.stack([oc.load(p)[0] for p in paths[:batch]])
    n = max(1, len(paths) // batch // 2)
    start = time.perf_counter()
    for _ in range(n):
        oc.predict_proba(ready)
    return e2e, n * batch / (time.perf_counter() - start), np.concatenate(proba)


def torch_rates(bb, clf, paths: list[str], batch: int) -> tuple[float, float, np.ndarray]:
    embed_images(bb, paths[:batch], batch, 0, progress=False)  # warm-up
    start = time.perf_counter()
    feats, errors = embed_images(bb, paths, batch, 0, progress=False)
    proba = clf.predict_proba(feats)
    e2e = len(paths) / (time.perf_counter() - start)
    assert not any(errors)
    ready = torch.stack([bb.preprocess(load_rgb(p)) for p in paths[:batch]])
    n = max(1, len(paths) // batch // 2)
    start = time.perf_counter()
    for _ in range(n):
        bb.encode_images(ready)
    return e2e, n * batch / (time.perf_counter() - start), proba


def labelled(root: str) -> tuple[list[str], list[str]]:
    samples = scan_folder(root).samples
    return [p for p, _ in samples], [c for _, c in samples]


def part1(arch: str, data: Path, batch: int, tmp: Path) -> list[dict]:
    ckpt = tmp / f"{arch.replace('/', '-')}.pt"
    save_state_dict(random_clip(arch), ckpt)
    fp32 = load_backbone(str(ckpt), "cpu", precision="fp32")
    train_paths, train_labels = labelled(str(data / "few_shot" / "train"))
    test_paths = labelled(str(data / "few_shot" / "test"))[0] + labelled(str(data / "zero_shot" / "test"))[0]
    classes = sorted(set(train_labels))
    X, _ = embed_images(fp32, train_paths, batch, 0, progress=False)
    text = text_classifier(fp32, classes + ["bench"], TEMPLATES)
    head = make_head("gda", {}, text_features=text[: len(classes)], logit_scale=fp32.logit_scale)
    head.fit(X, np.array([classes.index(c) for c in train_labels]), n_classes=len(classes))
    clf = OpenVocabulary(head, classes + ["bench"], text, fp32.logit_scale, len(classes), 0.0)
    out = export_onnx(fp32, clf, tmp / "classifier.onnx", metadata(fp32, clf, {"model": arch}, ckpt))
    rows = []
    e2e, fwd, reference = torch_rates(fp32, clf, test_paths, batch)
    rows.append({"arch": arch, "engine": "torch fp32", "end_to_end": e2e, "forward": fwd})
    here = resolve_precision("auto", torch.device("cpu"))
    if here != "fp32":
        e2e, fwd, proba = torch_rates(load_backbone(str(ckpt), "cpu", precision=here), clf, test_paths, batch)
        rows.append({"arch": arch, "engine": f"torch {here}", "end_to_end": e2e, "forward": fwd,
                     **parity(proba, reference)})
    for name, path in {"onnxruntime fp32": out, **int8_variants(out)}.items():
        e2e, fwd, proba = onnx_rates(path, test_paths, batch)
        rows.append({"arch": arch, "engine": name, "end_to_end": e2e, "forward": fwd, "mib": path.stat().st_size / 2**20,
                     **parity(proba, reference)})
    base = rows[0]["end_to_end"]
    for row in rows:
        row["vs_torch_fp32"] = row["end_to_end"] / base
    return rows


def part2(tmp: Path) -> list[dict]:
    import synthetic
    from conftest import CLASSES

    ckpt = synthetic.save_checkpoint(synthetic.train_tiny_clip(steps=300, seed=0), tmp / "tiny.pt")
    bb = load_backbone(str(ckpt), "cpu", precision="fp32")
    return [{"world": world, **row} for world, classes, shots in (("tests' (6 classes, 10 shots)", CLASSES, 10),
                                                                   ("hardest (24 classes, 2 shots)",
                                                                    synthetic.all_classes(), 2))
            for row in tiny_world(bb, ckpt, classes, shots, tmp / world.split()[0].strip("'"))]


def tiny_world(bb, ckpt, CLASSES: list[str], shots: int, tmp: Path) -> list[dict]:
    import synthetic

    split = {}
    for name, n, seed in (("train", shots, 1), ("test", 40, 3)):
        folder = scan_folder(synthetic.write_image_folder(tmp / "world" / name, CLASSES, n, seed=seed))
        split[name] = ([p for p, _ in folder.samples], np.array([folder.classes.index(c) for _, c in folder.samples]))
        classes = folder.classes
    X, _ = embed_images(bb, split["train"][0], 32, 0, progress=False)
    text = text_classifier(bb, [c.replace("_", " ") for c in classes], TEMPLATES)
    rows = []
    for head_name in ("gda", "linear"):
        head = make_head(head_name, {}, text_features=text, logit_scale=bb.logit_scale)
        head.fit(X, split["train"][1], n_classes=len(classes))
        clf = OpenVocabulary(head, classes, text, bb.logit_scale, len(classes), 0.0)
        out = export_onnx(bb, clf, tmp / f"tiny-{head_name}.onnx", metadata(bb, clf, {"model": "tiny"}, ckpt))
        paths, y = split["test"]
        reference = None
        for name, path in {"onnxruntime fp32": out, **int8_variants(out)}.items():
            oc = OnnxClassifier(path)
            top = oc.predict_proba(np.stack([oc.load(p)[0] for p in paths])).argmax(1)
            reference = top if reference is None else reference
            rows.append({"head": head_name, "engine": name, "accuracy": float((top == y).mean()),
                         "agrees_with_fp32": float((top == reference).mean())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["ViT-B/32"])
    ap.add_argument("--data", default="../shared/datasets/vehicles", help="the reference data set")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--parts", nargs="+", type=int, default=[1, 2])
    args = ap.parse_args()
    print(f"CPU, {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"onnxruntime {__import__('onnxruntime').__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'arch':<9} {'engine':<24} {'end-to-end img/s':>16} {'forward img/s':>13} {'vs torch fp32':>13} "
              f"{'max |dp|':>9} {'top-1 differs':>13} {'MiB':>6}")
        for arch in args.archs if 1 in args.parts else []:
            for row in part1(arch, Path(args.data), args.batch, Path(tmp)):
                rows.append(row)
                print(f"{row['arch']:<9} {row['engine']:<24} {row['end_to_end']:>16.1f} {row['forward']:>13.1f} "
                      f"{row['vs_torch_fp32']:>13.2f} {row.get('max_abs', float('nan')):>9.2e} "
                      f"{row.get('top1_differs', float('nan')):>13.3f} {row.get('mib', float('nan')):>6.0f}", flush=True)
        for row in part2(Path(tmp)) if 2 in args.parts else []:
            rows.append(row)
            print(f"tiny world, {row['world']:<29} {row['head']:<6} {row['engine']:<24} test accuracy {row['accuracy']:.4f}, "
                  f"top class as fp32's {row['agrees_with_fp32']:.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
