"""The data check of the split stage: what in the user's folders is far from what few-shot
classification needs, one finding per kind, each one line and counted.

- `small_class`: classes with fewer training photos than a minimum (10-40 is the target);
- `single_photo`: classes with one training photo (none of it can be held out for validation);
- `novel_without_test`: novel classes with no test photos (offered by predict, never tested);
- `test_without_train`: test folders of classes that have no training folder (not evaluated);
- `duplicate_train`: training photos that are byte-for-byte copies of another training photo;
- `duplicate_train_test`: test photos that are byte-for-byte copies of a training photo (a
  leak: the head is tested on photos it was trained on).

Near-duplicates (resized, re-encoded) need features; this is the exact, cheap first line.
`shots_beyond` is the shots stage's counterpart: shot counts that no class can fill.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .cache import file_sha256

KINDS = ("small_class", "single_photo", "novel_without_test", "test_without_train",
         "duplicate_train", "duplicate_train_test")
SHOWN = 3  # examples named in a finding's line; all of them are in `items`


@dataclass
class Finding:
    kind: str
    message: str
    items: list = field(default_factory=list)


def _examples(pairs: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{a} = {b}" for a, b in pairs[:SHOWN])
    return shown + (f"; and {len(pairs) - SHOWN} more (splits/summary.json)" if len(pairs) > SHOWN else "")


def check_data(train: list[tuple[str, str]], test: list[tuple[str, str]], classes: list[str],
               novel: list[str], novel_tested: set[str], untrained_tests: dict[str, int],
               min_per_class: int, digest=file_sha256) -> list[Finding]:
    """The findings (only kinds that found something) for the training photos `train` and
    the test photos `test` (path, label; trained and novel classes' alike), the trained
    `classes`, the `novel` ones and those of them with test photos, the test classes without
    a training folder with their photo counts, and the smallest class size asked for."""
    found = []
    counts = Counter(label for _, label in train)
    small = [c for c in classes if counts[c] < min_per_class]
    if small:
        found.append(Finding("small_class", f"{len(small)} class(es) with fewer than {min_per_class} training "
                             "photos (split.min_per_class; 10-40 per class is what few-shot heads are built "
                             "for): " + ", ".join(f"{c} ({counts[c]})" for c in small), small))
    single = [c for c in classes if counts[c] == 1]
    if single:
        found.append(Finding("single_photo", f"class(es) {single} have a single training photo: none of it is held "
                             "out for validation, so a head cannot check what it learns from them", single))
    untested = [c for c in novel if c not in novel_tested]
    if untested:
        found.append(Finding("novel_without_test", f"classes.novel {untested} have no test photos: they are not "
                             "tested, yet predict offers them; list only your own novel classes "
                             "(classes.novel: [] for none)", untested))
    if untrained_tests:
        found.append(Finding("test_without_train", f"test class(es) {sorted(untrained_tests)} have no training "
                             f"folder: their {sum(untrained_tests.values())} photos are not evaluated (a class known "
                             "by name only goes into data.zero_shot_dir and classes.novel)", sorted(untrained_tests)))
    first: dict[str, str] = {}
    within = []
    for path, _ in sorted(train):
        h = digest(path)
        if h in first:
            within.append((path, first[h]))
        else:
            first[h] = path
    if within:
        found.append(Finding("duplicate_train", f"{len(within)} training photo(s) are exact copies of another "
                             f"training photo: {_examples(within)}", within))
    leaks = [(path, first[h]) for path, _ in sorted(test) if (h := digest(path)) in first]
    if leaks:
        found.append(Finding("duplicate_train_test", f"{len(leaks)} test photo(s) are exact copies of training "
                             f"photos, so test accuracy counts photos the head trained on: {_examples(leaks)}",
                             leaks))
    return found


def summarize(findings: list[Finding]) -> dict:
    """{kind: {"count", "items"}} for every kind, zero counts included (a stable layout)."""
    items = {f.kind: [list(i) if isinstance(i, tuple) else i for i in f.items] for f in findings}
    return {kind: {"count": len(items.get(kind, [])), "items": items.get(kind, [])} for kind in KINDS}


def shots_beyond(ks: list, class_sizes: list[int]) -> list:
    """The shot counts of `ks` that no class can fill: k at least the largest class's photos,
    where every class trains on all it has, as `"all"` does."""
    largest = max(class_sizes, default=0)
    return [k for k in ks if k != "all" and int(k) >= largest]
