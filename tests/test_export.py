"""The ONNX export on the tiny world (every head, parity with torch), the precision setting,
and their bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLASSES
from fewclip import SettingError, UserError
from fewclip import backbone as backbones
from fewclip.backbone import load_backbone, resolve_precision
from fewclip.data import scan_folder
from fewclip.embedding import embed_images
from fewclip.export import export_onnx, main as export_main, metadata, parity
from fewclip.features import TextFeatures
from fewclip.heads import HEADS, ZeroShotHead, make_head
from fewclip.onnx_classifier import FORMAT_VERSION, OnnxClassifier
from fewclip.openvocab import OpenVocabulary, save_classifier
from fewclip.prompts import text_classifier
from helpers import env
from synthetic import write_image_folder

TEMPLATES = ["a photo of a {}.", "a picture of the {}."]
TRAINED = sorted(c.replace(" ", "_") for c in CLASSES[:5])
NOVEL = [CLASSES[5].replace(" ", "_")]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint):
    """The tiny world's photos (five trained classes, one novel), embedded at fp32, and the
    class text features."""
    root = tmp_path_factory.mktemp("export_world")
    bb = load_backbone(str(tiny_checkpoint), "cpu", precision="fp32")
    out = {"bb": bb, "root": root}
    for split, n, seed in (("train", 8, 1), ("val", 4, 2), ("test", 24, 3)):
        folder = scan_folder(write_image_folder(root / split, CLASSES, n, seed=seed))
        index = {c: i for i, c in enumerate(TRAINED + NOVEL)}
        paths = [p for p, _ in folder.samples]
        feats, errors = embed_images(bb, paths, batch_size=32, progress=False)
        assert not any(errors)
        labels = np.array([index[c] for _, c in folder.samples])
        out[split] = (feats, labels, paths)
    out["text"] = text_classifier(bb, TRAINED + NOVEL, TEMPLATES)
    return out


def fitted(name: str, world):
    bb, text = world["bb"], world["text"]
    (x, y, _), (xv, yv, _) = world["train"], world["val"]
    seen, seen_val = y < len(TRAINED), yv < len(TRAINED)
    if name == "zero-shot":
        return ZeroShotHead(text[: len(TRAINED)], bb.logit_scale).fit()
    head = make_head(name, {}, text_features=text[: len(TRAINED)], logit_scale=bb.logit_scale, seed=0)
    return head.fit(x[seen], y[seen], xv[seen_val], yv[seen_val], n_classes=len(TRAINED))


@pytest.mark.parametrize("name", [*HEADS, "zero-shot"])
def test_every_head_exports_and_onnxruntime_gives_the_same_probabilities(name, world, tmp_path):
    bb = world["bb"]
    clf = OpenVocabulary(fitted(name, world), TRAINED + NOVEL, world["text"], bb.logit_scale, len(TRAINED), 0.5)
    x, _, paths = world["test"]
    path = export_onnx(bb, clf, tmp_path / "c.onnx", metadata(bb, clf, {"model": bb.name, "mode": "few"}, paths[0]))
    onnx = OnnxClassifier(path)
    assert onnx.classes == TRAINED + NOVEL and onnx.novel == NOVEL
    assert onnx.metadata["head"]["name"] == clf.head.name
    pixels = np.stack([onnx.load(p)[0] for p in paths])
    got = parity(onnx.predict_proba(pixels), clf.predict_proba(x))
    assert got["max_abs"] <= 1e-4 and got["top1_differs"] == 0.0, got
    assert len(onnx.predict_proba(pixels[:1])) == 1  # the batch size is free


def test_preprocessing_without_torch_is_clip_s_own(world, tmp_path):
    """The numpy preprocessing gives CLIP's torchvision transform's numbers, photo sizes and
    shapes of every kind (wide, tall, odd sides, smaller than the resolution)."""
    from PIL import Image

    from fewclip.onnx_classifier import clip_preprocess

    bb, rng = world["bb"], np.random.default_rng(0)
    for w, h in ((97, 31), (31, 97), (224, 224), (13, 17), (500, 333), (64, 65)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ours = clip_preprocess(img, bb.resolution, bb.mean, bb.std)
        assert np.array_equal(ours, bb.preprocess(img).numpy()), (w, h)


@pytest.fixture(scope="module")
def artefact(world, tmp_path_factory):
    """A trained classifier's artefact (gda), as the train stage writes it."""
    bb, text = world["bb"], world["text"]
    folder = tmp_path_factory.mktemp("artefact")
    tf = TextFeatures(text, TRAINED + NOVEL, TEMPLATES, bb.logit_scale, bb.name, bb.sha256, "fp32")
    path = folder / "classifier.pt"
    save_classifier(path, "few", fitted("gda", world), TRAINED, tf, 0.5)
    return path


@pytest.fixture(scope="module")
def exported(artefact, tmp_path_factory) -> Path:
    """The artefact exported by the command, with a class added by name (and one it has)."""
    out = tmp_path_factory.mktemp("exported") / "c.onnx"
    export_main([str(out), "--classifier", str(artefact), "--add-class", "purple circle", "--add-class", "Yellow_Cross"])
    return out


def predict(*args, cwd, check=True, pre: str = "") -> subprocess.CompletedProcess:
    """`python -m fewclip.predict ARGS` in a fresh interpreter; with --onnx it also says
    whether torch was imported (the last line of stderr)."""
    code = (f"import sys\n{pre}\nfrom fewclip.predict import main\nfrom fewclip.pipeline.runner import run\n"
            "try:\n    run(lambda: main(sys.argv[1:]), {})\n"
            "finally:\n    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       env=env())
    if check and r.returncode:
        raise AssertionError(r.stderr)
    return r


def test_predict_onnx_matches_predict_without_importing_torch(world, artefact, exported, tmp_path):
    out = exported
    photos = world["root"] / "test"
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    common = [photos, "--format", "json", "--top-k", "9"]
    torch_run = predict(*common, "--classifier", artefact, "--precision", "fp32", "--add-class", "purple circle",
                        cwd=tmp_path)
    onnx_run = predict(*common, "--onnx", out, cwd=tmp_path)
    assert onnx_run.stderr.strip().endswith("torch imported: False"), onnx_run.stderr
    ours, theirs = json.loads(onnx_run.stdout), json.loads(torch_run.stdout)
    assert [r["path"] for r in ours] == [r["path"] for r in theirs] and len(ours) == 6 * 24
    for a, b in zip(ours, theirs):
        assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
        pa = {p["class"]: p["probability"] for p in a["predictions"]}
        pb = {p["class"]: p["probability"] for p in b["predictions"]}
        assert pa.keys() == pb.keys() and len(pa) == 6
        assert max(abs(pa[c] - pb[c]) for c in pa) <= 1e-4
    skipped = [line for line in onnx_run.stderr.splitlines() if "broken.jpg" in line]
    assert skipped == [line for line in torch_run.stderr.splitlines() if "broken.jpg" in line] and len(skipped) == 1
    assert "144 of 145 images classified over 6 classes (1 novel)" in onnx_run.stderr
    # a contact sheet without matplotlib or torch
    sheet = tmp_path / "sheet.jpg"
    r = predict(photos, "--onnx", out, "--contact-sheet", sheet, cwd=tmp_path,
                pre="sys.modules['matplotlib'] = None")
    assert sheet.stat().st_size > 1000 and r.stderr.strip().endswith("torch imported: False")


def test_the_readme_s_standalone_reader_gives_predict_s_answer(world, exported, tmp_path):
    """The README's 15 lines (onnxruntime, numpy and Pillow only) on an exported file."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Deploying the classifier"):]
    code = section[section.index("```python\n") + 10:section.index("\n```", section.index("```python"))]
    assert len(code.splitlines()) <= 15
    (tmp_path / "reader.py").write_text(code.replace('"classifier.onnx"', repr(str(exported))))
    photo = world["test"][2][5]
    r = subprocess.run([sys.executable, "reader.py", photo], cwd=tmp_path, capture_output=True, text=True, check=True)
    name, probability = r.stdout.strip().rsplit(" ", 1)
    ours = json.loads(predict(photo, "--onnx", exported, "--format", "json", cwd=tmp_path).stdout)[0]["predictions"][0]
    assert name == ours["class"] and abs(float(probability) - ours["probability"]) <= 1e-4


def test_int8_export_is_smaller_and_keeps_the_top_class(world, artefact, exported, tmp_path):
    small = tmp_path / "int8.onnx"
    export_main([str(small), "--classifier", str(artefact), "--add-class", "purple circle", "--int8"])
    fp32, int8 = OnnxClassifier(exported), OnnxClassifier(small)
    assert int8.classes == fp32.classes and int8.metadata["backbone"]["precision"].startswith("int8")
    assert small.stat().st_size < 0.75 * exported.stat().st_size  # (a quarter for full-size models)
    pixels = np.stack([fp32.load(p)[0] for p in world["test"][2]])
    a, b = int8.predict_proba(pixels), fp32.predict_proba(pixels)
    assert not np.array_equal(a, b)  # quantized
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95


def test_bad_onnx_input_gets_one_line(world, artefact, exported, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    photo = world["test"][2][0]
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    foreign = tmp_path / "foreign.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(foreign))
    ours = exported
    later = onnx.load(str(ours))
    for prop in later.metadata_props:
        if prop.key == "fewclip.format_version":
            prop.value = json.dumps(FORMAT_VERSION + 1)
    newer = tmp_path / "newer.onnx"
    onnx.save(later, str(newer))
    cases = {garbage: "not an ONNX model onnxruntime can load", foreign: "without fewclip's metadata",
             newer: f"of format {FORMAT_VERSION + 1}, this version of fewclip reads format {FORMAT_VERSION}",
             tmp_path / "missing.onnx": "ONNX file not found"}
    for path, said in cases.items():
        r = predict(photo, "--onnx", path, cwd=tmp_path, check=False)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 1 and len(errors) == 1 and said in errors[0] and str(path) in errors[0], r.stderr
    r = predict(photo, "--onnx", ours, cwd=tmp_path, check=False, pre="sys.modules['onnxruntime'] = None")
    assert r.returncode == 1 and "pip install -e '.[onnx]'" in r.stderr and "Traceback" not in r.stderr
    r = predict(photo, "--onnx", ours, "--engine", "ray", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "--engine ray does not apply" in r.stderr and "Traceback" not in r.stderr
    # an artefact of an older format
    import torch

    old = tmp_path / "old.pt"
    torch.save({**torch.load(artefact, weights_only=True), "version": 2}, old)
    with pytest.raises(UserError, match="a classifier of format 2, this version of fewclip reads format 3"):
        export_main([str(tmp_path / "x.onnx"), "--classifier", str(old)])
    # another checkpoint than the one it was trained on (the same weights, another file)
    other = tmp_path / "other.pt"
    other.write_bytes(Path(world["bb"].name).read_bytes() + b"\0")
    with pytest.raises(UserError, match=r"other.pt: checkpoint SHA-256 .* is not the backbone .*pass that checkpoint"):
        export_main([str(tmp_path / "x.onnx"), "--classifier", str(artefact), "--model", str(other)])


def test_precision_auto_and_refusals(monkeypatch):
    import torch

    cpu = torch.device("cpu")
    monkeypatch.setattr(backbones, "native_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    monkeypatch.setattr(backbones, "native_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(SettingError) as e:
        resolve_precision("bf16", cpu)
    assert "fp32" in str(e.value) and "auto" in str(e.value) and "AVX512_BF16" in str(e.value)
    with pytest.raises(SettingError, match="CUDA only"):
        resolve_precision("fp16", cpu)
    with pytest.raises(SettingError, match="one of auto"):
        resolve_precision("int4", cpu)


def test_bf16_on_a_cpu_without_it_is_refused_in_one_line_naming_the_params_key(monkeypatch, tiny_checkpoint):
    from fewclip.backbone import LazyBackbone
    from fewclip.pipeline.runner import PARAMS_KEYS, message

    monkeypatch.setattr(backbones, "native_bf16", lambda: False)
    with pytest.raises(SettingError) as e:
        LazyBackbone(str(tiny_checkpoint), "cpu", precision="bf16")  # what the embed stage builds first
    line = message(e.value, PARAMS_KEYS)
    assert line.startswith("params.yaml: embed.precision='bf16': this CPU has no native bf16") and "\n" not in line
    assert "use fp32, or auto" in line


@pytest.mark.skipif(not backbones.native_bf16(), reason="this CPU has no native bf16 (AVX512_BF16 or AMX)")
def test_bf16_features_agree_with_fp32(world, tiny_checkpoint):
    """bf16 (autocast) against fp32 on the tiny world's photos: the features' cosine, and a
    head trained on fp32 features predicting from bf16 ones."""
    bf16 = load_backbone(str(tiny_checkpoint), "cpu", precision="bf16")
    assert bf16.precision == "bf16" and bf16.precision_key == "bfloat16"
    x, _, paths = world["test"]
    xb, errors = embed_images(bf16, paths, batch_size=32, progress=False)
    assert not any(errors)
    cos = (x * xb).sum(1)
    assert not np.array_equal(x, xb)  # bf16 did run
    assert cos.mean() >= 0.999 and cos.min() >= 0.995, (cos.mean(), cos.min())
    head = fitted("gda", world)
    agree = (head.predict_proba(xb).argmax(1) == head.predict_proba(x).argmax(1)).mean()
    assert agree >= 0.99, agree
