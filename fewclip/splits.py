"""The folder layout rules, the data check, the stratified train/validation split, and the
file lists that carry the split to the other stages (`path,label` CSV files)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import SettingError, UserError, checks
from .data import ImageFolder, scan_folder


def stratified_split(samples: list[tuple[str, str]], val_fraction: float, seed: int
                     ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Per class, a seeded shuffle puts round(n * val_fraction) images into validation. Every
    class with at least two images keeps one for training and (`val_fraction > 0`) gives one
    to validation."""
    if not 0 <= val_fraction < 1:
        raise SettingError("val_fraction", val_fraction, "must be in [0, 1)")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = {}
    for path, label in sorted(samples):
        by_class.setdefault(label, []).append(path)
    train, val = [], []
    for label in sorted(by_class):
        paths = by_class[label]
        n_val = 0
        if val_fraction > 0 and len(paths) >= 2:
            n_val = min(max(1, round(len(paths) * val_fraction)), len(paths) - 1)
        order = rng.permutation(len(paths))
        val += [(paths[i], label) for i in sorted(order[:n_val])]
        train += [(paths[i], label) for i in sorted(order[n_val:])]
    return train, val


@dataclass
class Splits:
    """The split stage's result: file lists, the trained and novel classes, the scanned
    folders, and the data check's findings (`fewclip.checks`)."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    zero_shot: list[tuple[str, str]]
    classes: list[str]
    novel: list[str]
    folders: list[ImageFolder]
    findings: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"classes": self.classes, "novel_classes": self.novel,
                "images": {"train": len(self.train), "val": len(self.val), "test": len(self.test),
                           "zero_shot": len(self.zero_shot)},
                "checks": checks.summarize(self.findings),
                "skipped": {str(f.root): {"count": len(f.skipped), "files": [[s.path, s.reason] for s in f.skipped]}
                            for f in self.folders}}


def make_splits(train_dir: str | Path, test_dir: str | Path, zero_shot_dir: str | Path | None, novel: list[str],
                val_fraction: float, seed: int, min_per_class: int = 1, info=lambda line: None,
                warn=lambda message: None) -> Splits:
    """Scan the data folders, check their layout and the data (`fewclip.checks`), then split
    the training photos.

    The rules: the trained classes are the training folders, each with at least one usable
    image; a novel class (known by name only) has no training folder; every class in
    `zero_shot_dir` (optional: a missing folder means no novel-class photos) is a novel
    class. A broken rule stops with a UserError naming the folder and the classes. A test
    folder of a class without training folder, or without usable images, is not evaluated
    and warned about. `info` hears each folder's scan summary (before any rule is checked),
    `warn` the warnings, among them each finding of the data check."""
    for setting, folder in (("train_dir", train_dir), ("test_dir", test_dir)):
        if not Path(folder).is_dir():
            raise SettingError(setting, str(folder), "data folder not found; obtain the data (README: `make data`) "
                               "or name the folder your photos are in")
    train, test = scan_folder(train_dir), scan_folder(test_dir)
    zero = scan_folder(zero_shot_dir) if zero_shot_dir and Path(zero_shot_dir).is_dir() else None
    if zero_shot_dir and zero is None:
        info(f"{zero_shot_dir}: no such folder: no test photos of novel classes")
    for folder in filter(None, (train, test, zero)):
        info(folder.describe())
    counts = train.counts()
    if not train.classes:
        raise UserError(f"{train.root}: no class folders found")
    empty = [c for c in train.classes if counts[c] == 0]
    if empty:
        raise UserError(f"{train.root}: class folder(s) {empty} hold no usable image; "
                        "these classes cannot be trained (add images or remove the folders)")
    test_counts = test.counts()
    untrained = {c: test_counts[c] for c in sorted(set(test.classes) - set(train.classes))}
    for c in sorted(set(test.classes) - set(test_counts)):  # counted once, not once per class
        warn(f"{test.root / c}: no usable test image; class {c!r} is not evaluated")
    novel = list(novel)
    trained_novel = sorted(set(novel) & set(train.classes))
    if trained_novel:
        raise SettingError("novel", trained_novel, f"these classes have training folders in {train.root}; "
                           "a novel class is known by name only")
    if zero:
        stray = sorted(set(zero.classes) - set(novel))
        if stray:
            raise UserError(f"{zero.root}: test class(es) {stray} are neither trained (no folder in "
                            f"{train.root}) nor novel (the novel classes: {novel}); "
                            "list them as novel classes or remove the folders")
    tested = [(p, c) for p, c in test.samples if c not in untrained]
    zero_samples = zero.samples if zero else []
    findings = checks.check_data(train.samples, tested + zero_samples, train.classes, novel,
                                 {c for _, c in zero_samples}, untrained, min_per_class)
    for finding in findings:
        warn(finding.message)
    tr, va = stratified_split(train.samples, val_fraction, seed)
    return Splits(tr, va, tested, zero_samples, train.classes, novel,
                  [f for f in (train, test, zero) if f], findings)


def write_list(path: str | Path, samples: list[tuple[str, str]]) -> None:
    """A file list: CSV with a `path,label` header, one image per row."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["path", "label"], *samples])


def read_list(path: str | Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["path", "label"]:
        raise UserError(f"{path}: not a file list (expected a 'path,label' CSV header)")
    return [(r[0], r[1]) for r in rows[1:]]
