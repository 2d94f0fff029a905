"""A new user's own photos through the real `dvc add data` and `dvc exp run`, on the tiny
world: an empty zero-shot folder (which DVC does not track, so it vanishes), then none at
all; the default `classes.novel: [bench]` left in place, then cleared; a class far below
the target size; a test photo copied from the training photos; shot counts no class can
fill. Each surprise is said in one line and counted, and the run goes on."""

import json
import shutil

import numpy as np
import pytest

from helpers import copy_repo, set_params, sh
from synthetic import write_image_folder

TRAIN = {"crimson_circle": "red circle", "green_square": "green square", "blue_triangle": "blue triangle"}


def read_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def own(tiny_checkpoint_ts, tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("own"))
    data = repo / "data"
    write_image_folder(data / "few_shot" / "train", TRAIN, 8, seed=30)
    write_image_folder(data / "few_shot" / "train", {"yellow_cross": "yellow cross"}, 3, seed=31)  # tiny class
    write_image_folder(data / "few_shot" / "test", {**TRAIN, "yellow_cross": "yellow cross"}, 4, seed=32)
    shutil.copy(data / "few_shot" / "train" / "green_square" / "002.jpg",
                data / "few_shot" / "test" / "green_square" / "copied.jpg")  # a leak
    (data / "zero_shot" / "test").mkdir(parents=True)  # "optional": created, left empty
    set_params(repo, model=str(tiny_checkpoint_ts), **{
        "embed.num_workers": 0, "embed.feature_cache": str(tmp_path_factory.mktemp("features")),
        "shots.fit_cache": str(tmp_path_factory.mktemp("fits")), "shots.ks": [1, 16, "all"], "shots.seeds": 1,
        "shots.heads": ["gda", "ncm"]})
    sh("dvc", "add", "data", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "my photos", cwd=repo)
    first = sh("dvc", "exp", "run", "-n", "first", cwd=repo)
    return repo, first


def test_an_empty_zero_shot_folder_does_not_stop_the_run(own):
    repo, first = own
    out = first.stdout + first.stderr
    assert "data/zero_shot/test: no such folder: no test photos of novel classes" in out  # DVC removed it
    assert read_json(repo / "splits" / "summary.json")["images"]["zero_shot"] == 0


def test_the_data_check_says_each_surprise_once_and_counts_it(own):
    repo, first = own
    err = first.stderr
    assert err.count("warning: classes.novel ['bench'] have no test photos") == 1
    assert "1 class(es) with fewer than 5 training photos" in err and "yellow_cross (3)" in err
    assert "1 test photo(s) are exact copies of training photos" in err and "copied.jpg" in err
    checks = read_json(repo / "splits" / "summary.json")["checks"]
    assert {k: v["count"] for k, v in checks.items() if v["count"]} == {
        "small_class": 1, "novel_without_test": 1, "duplicate_train_test": 1}
    assert "data check: small_class 1, novel_without_test 1, duplicate_train_test 1" in first.stdout


def test_shot_counts_no_class_can_fill_read_all(own):
    repo, first = own
    assert "warning: shots.ks [16]: no class has that many photos (the largest has 8)" in first.stderr
    curve = read_json(repo / "metrics" / "evaluate" / "metrics.json")["curve"]
    assert curve["k16"] == "all" and isinstance(curve["k01"], float) and isinstance(curve["k_all"], float)
    fits = (repo / "metrics" / "shots" / "fits.csv").read_text().splitlines()[1:]
    assert not any(",16," in row for row in fits)  # not fitted


def test_the_report_says_whether_the_photos_were_used(own):
    repo, first = own
    classifier = read_json(repo / "metrics" / "evaluate" / "report.json")["classifier"]
    assert classifier["head"] == "gda" and set(classifier["chosen"]) == {"alpha"}
    kept = classifier["kept_zero_shot"]
    assert classifier["uses_training_photos"] is (not kept)
    train_line = next(line for line in first.stdout.splitlines() if line.startswith("train: "))
    assert ("it kept zero-shot CLIP" in train_line) is kept and ("alpha=0.0" in train_line) is kept


def test_clearing_the_novel_classes_without_a_zero_shot_folder(own):
    """The README's checklist: no zero-shot folder at all, `classes.novel: []`; predict then
    offers the user's own classes only."""
    repo, _ = own
    sh("dvc", "exp", "apply", "first", cwd=repo)
    assert not (repo / "data" / "zero_shot").exists() or not any((repo / "data" / "zero_shot").rglob("*.jpg"))
    shutil.rmtree(repo / "data" / "zero_shot", ignore_errors=True)
    second = sh("dvc", "exp", "run", "-n", "mine", "-S", "classes.novel=[]", cwd=repo)
    assert "classes.novel" not in second.stderr
    assert not read_json(repo / "splits" / "summary.json")["checks"]["novel_without_test"]["count"]
    photos = write_image_folder(repo.parent / "new", {"x": "green square"}, 2, seed=33)
    rows = json.loads(sh("python", "-m", "fewclip.predict", str(photos), "--format", "json", "--top-k", "9",
                         cwd=repo).stdout)
    assert {p["class"] for r in rows for p in r["predictions"]} == {*TRAIN, "yellow_cross"}


def test_an_edit_to_the_code_that_makes_pixels_gives_new_features(own):
    """The feature cache keys the code that turns files into pixels: mirroring every image in
    `load_rgb` makes the next `dvc repro` embed every image anew, with other features; undoing
    the edit finds the first features in the cache again (`dvc repro embed`: the stages up to
    the features). (PYTHONPATH: the stages run the repository's own copy of the package, the
    one edited here.)"""
    repo, _ = own
    mine = {"PYTHONPATH": str(repo)}
    sh("dvc", "repro", "embed", cwd=repo, extra_env=mine)
    before = np.load(repo / "features" / "train.npz")["features"]
    pixels = repo / "fewclip" / "pixels.py"
    source = pixels.read_text()
    line = "            return _to_rgb(ImageOps.exif_transpose(img))"
    assert line in source
    try:
        pixels.write_text(source.replace(line, "            return ImageOps.mirror(_to_rgb(ImageOps.exif_transpose(img)))"))
        out = sh("dvc", "repro", "embed", cwd=repo, extra_env=mine).stdout
        assert "Running stage 'embed'" in out
        cache = read_json(repo / "features" / "summary.json")["cache"]
        assert cache["train"] == {"cached": 0, "embedded": len(before)}, cache
        mirrored = np.load(repo / "features" / "train.npz")["features"]
        assert np.abs(mirrored - before).max() > 1e-3
    finally:
        pixels.write_text(source)
    sh("dvc", "repro", "embed", cwd=repo, extra_env=mine)
    assert read_json(repo / "features" / "summary.json")["cache"]["train"]["embedded"] == 0
    assert np.array_equal(np.load(repo / "features" / "train.npz")["features"], before)
