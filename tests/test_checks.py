"""The split stage's data check (`fewclip.checks`), through `make_splits` on real folders."""

import shutil

from fewclip.checks import KINDS, check_data, shots_beyond
from fewclip.splits import make_splits
from synthetic import write_image_folder

CLASSES = ["red circle", "green square", "blue triangle"]


def split(tmp_path, per_class=None, novel=(), zero=None, min_per_class=5):
    """make_splits over tmp_path/{train,test,zs}: `per_class` {class: training photos}."""
    per_class = per_class or {c: 8 for c in CLASSES}
    for i, (c, n) in enumerate(per_class.items()):
        write_image_folder(tmp_path / "train", [c], n, seed=i)
    write_image_folder(tmp_path / "test", CLASSES, 2, seed=100)
    if zero:
        write_image_folder(tmp_path / "zs", {c: "yellow cross" for c in zero}, 2, seed=200)
    lines, warnings = [], []
    splits = make_splits(tmp_path / "train", tmp_path / "test", tmp_path / "zs", list(novel), 0.2, 0,
                         min_per_class, info=lines.append, warn=warnings.append)
    return splits, lines, warnings


def counts(splits) -> dict:
    return {k: v["count"] for k, v in splits.summary()["checks"].items()}


def test_clean_data_has_no_finding_and_every_kind_is_counted(tmp_path):
    splits, lines, warnings = split(tmp_path, novel=["bench"], zero=["bench"])
    assert warnings == [] and counts(splits) == dict.fromkeys(KINDS, 0)


def test_a_missing_zero_shot_folder_is_no_error_and_untested_novel_classes_are_named(tmp_path):
    splits, lines, warnings = split(tmp_path, novel=["bench"])
    assert splits.zero_shot == [] and any("zs: no such folder" in line for line in lines)
    assert counts(splits)["novel_without_test"] == 1
    assert any("classes.novel ['bench'] have no test photos" in w and "classes.novel: []" in w for w in warnings)


def test_small_and_single_photo_classes_are_warned_about(tmp_path):
    splits, _, warnings = split(tmp_path, {"red circle": 1, "green square": 3, "blue triangle": 8})
    assert counts(splits)["small_class"] == 2 and counts(splits)["single_photo"] == 1
    assert any("2 class(es) with fewer than 5 training photos" in w and "green_square (3), red_circle (1)" in w
               for w in warnings)
    assert any("['red_circle'] have a single training photo" in w for w in warnings)
    assert [p for p, c in splits.val if c == "red_circle"] == []  # what the warning says


def test_a_test_class_without_training_folder_is_not_evaluated_and_counted(tmp_path):
    write_image_folder(tmp_path / "test", ["yellow cross"], 3, seed=7)
    splits, _, warnings = split(tmp_path)
    assert "yellow_cross" not in {c for _, c in splits.test} and len(splits.test) == 6
    assert counts(splits)["test_without_train"] == 1
    assert any("['yellow_cross'] have no training folder: their 3 photos are not evaluated" in w for w in warnings)


def test_exact_copies_within_training_and_from_training_into_test_are_found(tmp_path):
    write_image_folder(tmp_path / "train", CLASSES, 8, seed=0)
    red = tmp_path / "train" / "red_circle"
    shutil.copy(red / "000.jpg", tmp_path / "train" / "green_square" / "copy.jpg")  # same photo, other class
    write_image_folder(tmp_path / "test", CLASSES, 2, seed=100)
    shutil.copy(red / "001.jpg", tmp_path / "test" / "red_circle" / "leak.jpg")
    splits = make_splits(tmp_path / "train", tmp_path / "test", "", [], 0.2, 0, 5)
    found = splits.summary()["checks"]
    assert found["duplicate_train"]["items"] == [[str(tmp_path / "train/red_circle/000.jpg"),
                                                 str(tmp_path / "train/green_square/copy.jpg")]]
    assert found["duplicate_train_test"]["items"] == [[str(tmp_path / "test/red_circle/leak.jpg"),
                                                      str(red / "001.jpg")]]


def test_a_long_list_of_copies_names_a_few_and_counts_all():
    train = [(f"t{i}.jpg", "a") for i in range(6)]
    finding, = check_data(train, [], ["a"], [], set(), {}, 1, digest=lambda p: "same")
    assert finding.kind == "duplicate_train" and len(finding.items) == 5
    assert "5 training photo(s)" in finding.message and "and 2 more (splits/summary.json)" in finding.message


def test_shot_counts_no_class_can_fill():
    assert shots_beyond([1, 2, 4, 8, 16, "all"], [7, 5, 3]) == [8, 16]
    assert shots_beyond([1, 16, "all"], [40, 3]) == []
