"""The audit (fewclip.audit) on the tiny world: moved photos rank among the top suspects,
altered copies of training photos in the test folder are found with their originals, and
the small-class and no-test cases say so."""

import shutil

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import FOLDERS
from fewclip.audit import audit
from fewclip.audit.duplicates import Photos, find_duplicates
from fewclip.audit.fingerprint import fingerprints
from fewclip.audit.labels import fold_ids, suspect_labels
from fewclip.backbone import load_backbone
from fewclip.data import scan_folder
from fewclip.embedding import embed_images
from fewclip.features import FeatureSet
from fewclip.heads import make_head
from synthetic import feature_blobs, write_image_folder


def feature_set(backbone, rows, classes):
    feats, errors = embed_images(backbone, [p for p, _ in rows], 64, 0, progress=False)
    assert not any(errors)
    return FeatureSet(feats, np.array([classes.index(c) for _, c in rows]), classes, [p for p, _ in rows],
                      backbone.name, backbone.sha256)


def empty(classes, dim):
    return FeatureSet(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), classes, [], "m", "s")


@pytest.fixture(scope="module")
def world(tiny_checkpoint, tmp_path_factory):
    """Training photos with 3 moved into the wrong class folder, and a test folder with 4
    altered copies of training photos (resized, re-encoded, mirrored, cropped)."""
    root = tmp_path_factory.mktemp("audit-world")
    train = write_image_folder(root / "train", FOLDERS, 20, seed=20)
    test = write_image_folder(root / "test", FOLDERS, 8, seed=21)
    moved = []
    for i, (src, dst) in enumerate([("green_square", "yellow_cross"), ("blue_triangle", "orange_square"),
                                    ("yellow_cross", "purple_circle")]):
        target = train / dst / f"moved{i}.jpg"
        shutil.move(train / src / f"{i:03d}.jpg", target)
        moved.append(str(target))
    copies = {}
    for i, (cls, alter) in enumerate([("purple_circle", lambda im: im.resize((im.width * 3 // 4,) * 2)),
                                      ("green_square", lambda im: im),
                                      ("orange_square", ImageOps.mirror),
                                      ("blue_triangle", lambda im: im.crop((2, 2, im.width - 2, im.height - 2)))]):
        original = train / cls / f"{10 + i:03d}.jpg"
        copy = test / cls / f"copy{i}.jpg"
        alter(Image.open(original).convert("RGB")).save(copy, quality=60 if i == 1 else 90)
        copies[str(copy)] = str(original)
    backbone = load_backbone(str(tiny_checkpoint), device="cpu")
    classes = sorted(FOLDERS)
    tr = feature_set(backbone, scan_folder(train).samples, classes)
    te = feature_set(backbone, scan_folder(test).samples, classes)
    return tr, te, moved, copies, backbone


def gda(settings):
    return make_head("gda", settings)


def test_moved_photos_are_top_suspects_and_copies_are_leaks(world):
    tr, te, moved, copies, _ = world
    half = len(tr.labels) // 2  # train and val halves, as the split stage would give
    first = FeatureSet(tr.features[:half], tr.labels[:half], tr.classes, tr.paths[:half], "m", "s")
    second = FeatureSet(tr.features[half:], tr.labels[half:], tr.classes, tr.paths[half:], "m", "s")
    found = audit(first, second, te, empty(["blue_circle"], tr.features.shape[1]), gda, folds=10)
    top = [r["path"] for r in found.suspects[:6]]
    assert set(moved) <= set(top), (moved, top)
    assert all(r["score"] > 0 for r in found.suspects if r["path"] in moved)
    by_path = {d.path: d for d in found.duplicates if d.where == "train-test"}
    for copy, original in copies.items():
        assert copy in by_path and by_path[copy].duplicate_of == original, copy
    assert found.metrics["leaks"] == len(by_path) and found.metrics["suspects"] >= 3
    assert found.folds == 10 and not found.unchecked


def test_an_exact_copy_is_called_exact_and_said_in_one_line(world, tmp_path):
    tr, te, _, _, backbone = world
    shutil.copy(tr.paths[0], tmp_path / "same.jpg")
    rows = [(str(tmp_path / "same.jpg"), tr.classes[tr.labels[0]])]
    test = feature_set(backbone, rows, tr.classes)
    found = audit(tr, empty(tr.classes, tr.features.shape[1]), test, empty([], tr.features.shape[1]), gda)
    (dup,) = [d for d in found.duplicates if d.where == "train-test"]
    assert dup.kind == "exact" and dup.duplicate_of == tr.paths[0]
    assert sum("exact copies of training photos" in w for w in found.warnings) == 1


def test_a_one_photo_class_is_unchecked_and_no_test_photos_say_so(world):
    tr, _, _, _, _ = world
    keep = np.flatnonzero(tr.labels != 0)
    keep = np.concatenate([[np.flatnonzero(tr.labels == 0)[0]], keep])  # class 0 keeps one photo
    small = FeatureSet(tr.features[keep], tr.labels[keep], tr.classes, [tr.paths[i] for i in keep], "m", "s")
    dim = tr.features.shape[1]
    found = audit(small, empty(tr.classes, dim), empty(tr.classes, dim), empty([], dim), gda)
    assert found.unchecked == [tr.classes[0]]
    assert any(tr.classes[0] in w and "not checked" in w for w in found.warnings)
    assert found.suspects[-1]["label"] == tr.classes[0] and found.suspects[-1]["score"] == ""
    assert "no test photos: no leak check" in found.lines


def test_folds_never_exceed_the_smallest_checked_class():
    y = np.array([0] * 4 + [1] * 12 + [2] * 2)
    fold, k, unchecked = fold_ids(y, 3, folds=10)
    assert k == 4 and unchecked == [2] and (fold[y == 2] == -1).all()
    for f in range(k):  # every held-out photo's class keeps photos in training
        for c in (0, 1):
            assert ((fold != f) & (y == c)).any()


def test_flipped_labels_rank_first_on_feature_blobs():
    X, y = feature_blobs(20, seed=1, classes=5, dim=32, spread=0.5)
    noisy = y.copy()
    flipped = [3, 25, 47, 70, 91]
    noisy[flipped] = (y[flipped] + 1) % 5
    s = suspect_labels(lambda settings: make_head("ncm", settings), X, noisy, 5, folds=5)
    assert set(s.order[:5]) == set(flipped)
    assert (s.suggested[flipped] == y[flipped]).all()


def test_pixel_fingerprints_find_copies_that_features_cannot(tmp_path):
    """Random features (a backbone that tells nothing apart) and a mirrored, resized copy:
    the pixels find it, and the feature threshold rises above the distinct photos."""
    write_image_folder(tmp_path / "a", ["red circle", "blue square"], 6, seed=3)
    paths = sorted(str(p) for p in (tmp_path / "a").rglob("*.jpg"))
    copy = tmp_path / "copy.jpg"
    ImageOps.mirror(Image.open(paths[2]).convert("RGB")).resize((40, 40)).save(copy, quality=70)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(paths) + 1, 16)) + 20  # every photo at cosine ~0.998 to every other
    feats = (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32)
    labels = ["red" if "red" in p else "blue" for p in paths]

    def photos(ps, X, lab):
        full, var, _ = fingerprints(ps)
        return Photos(X, ps, lab, full, var, [None] * len(ps))

    groups = {"train": photos(paths, feats[:-1], labels), "test": photos([str(copy)], feats[-1:], ["red"])}
    found, floor = find_duplicates(groups)
    leaks = [d for d in found if d.where == "train-test"]
    assert [(d.path, d.duplicate_of) for d in leaks] == [(str(copy), paths[2])]
    assert floor > float(np.max(feats[:-1] @ feats[:-1].T - 2 * np.eye(len(paths))))
