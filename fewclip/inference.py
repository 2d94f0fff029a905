"""What the commands that use a trained classifier share (`predict`, `export`, `suggest`):
the check that a backbone is the one it was trained on, classes added by name, and the
precision to embed new photos at."""

from __future__ import annotations

from . import SettingError, UserError
from .backbone import resolve_precision
from .prompts import text_classifier


def same_name(name: str) -> str:
    """A class name as prompts read it (`_` a space, case and spacing ignored), to find a
    class given twice in two spellings."""
    return " ".join(name.replace("_", " ").split()).casefold()


def add_classes(clf, names: list[str], backbone, templates: list[str], warn, where: str):
    """A copy of `clf` (a `fewclip.openvocab.OpenVocabulary`) with the novel classes `names`
    too, their text features from `templates`; a name that is already a class (in any
    spelling: `fire engine`, `Fire_Engine`), or given twice, is added once, with a warning.
    `where` names the classifier in the warning."""
    known = {same_name(c): c for c in clf.classes}
    new: list[str] = []
    for name in names:
        key = same_name(name)
        if key in known:
            warn(f"--add-class {name!r}: {where} already has the class {known[key]!r}; not added again")
        elif key in map(same_name, new):
            warn(f"--add-class {name!r}: given twice (as {next(n for n in new if same_name(n) == key)!r}); added once")
        else:
            new.append(name)
    return clf.with_classes(new, text_classifier(backbone, new, templates)) if new else clf


def saved_precision(saved: dict, device, warn, where: str = "the classifier") -> str:
    """The precision to embed new photos at for a classifier (`load_classifier`'s dict): its
    training features' own, where `device` runs it; else `auto`, with a warning."""
    try:
        return resolve_precision(saved["precision"], device)
    except SettingError as e:
        here = resolve_precision("auto", device)
        warn(f"{where} was trained on {saved['precision']} features, which {device} does not run "
             f"({e.problem.split(';')[0]}): embedding at {here}")
        return here


def check_backbone(sha256: str, model: str, saved: dict, classifier) -> None:
    """One UserError unless `sha256`, backbone `model`'s, is that of the backbone the
    classifier (`load_classifier`'s dict, from the file `classifier`) was trained on."""
    if sha256 != saved["model_sha256"]:
        raise UserError(f"{model}: checkpoint SHA-256 {sha256[:12]}... is not the backbone {classifier} was trained "
                        f"on ({saved['model']}, {saved['model_sha256'][:12]}...); pass that checkpoint with --model")
