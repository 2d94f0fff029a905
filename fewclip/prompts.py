"""Prompt templates and the zero-shot text classifier.

A class's text feature is CLIP's prompt ensemble (Radford et al. 2021, sec. 3.1.4): every
template filled with the class name is encoded, each embedding is L2-normalised, the mean is
taken and normalised again.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from . import SettingError, UserError
from .cache import code_identity, text_key


def text_identity(backbone) -> str:
    """What decides a class's text feature besides its prompts and the checkpoint: this
    module's code (the ensemble) and the backbone's tokenizer (`tokenizer_id`)."""
    return code_identity(("prompts.py",), ("torch",), backbone.tokenizer_id)


def class_prompt_name(folder: str) -> str:
    """The words a prompt uses for a class folder: `fire_engine` -> `fire engine`."""
    return " ".join(folder.replace("_", " ").split())


def check_templates(templates: list[str]) -> list[str]:
    if not templates:
        raise SettingError("templates", templates, "empty; give at least one, such as 'a photo of a {}.'")
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if bad:
        raise SettingError("templates", bad, "each prompt template needs exactly one '{}' for the class name")
    return list(templates)


def class_prompts(classes: list[str], names: dict | None = None) -> dict[str, list[str]]:
    """The words each class's prompts use: its entry in `names` (the `classes.prompts` param:
    one or more names or short descriptions), else its folder name made readable."""
    names = names or {}
    out = {}
    for c in classes:
        given = names.get(c)
        if given is None:
            out[c] = [class_prompt_name(c)]
        elif isinstance(given, str):
            out[c] = [given]
        elif isinstance(given, list) and given and all(isinstance(g, str) and g.strip() for g in given):
            out[c] = list(given)
        else:
            raise SettingError("prompts", {c: given}, "each class needs a name or a list of names")
    return out


def text_classifier(backbone, class_names: list[str], templates: list[str],
                    names: dict | None = None, cache=None) -> np.ndarray:
    """(n_classes, dim) float32 array of L2-normalised ensemble text features: every template
    filled with every name of the class (`class_prompts`), averaged. With a feature `cache`
    (`fewclip.cache.FeatureCache`), a class whose exact prompt texts were encoded before by
    this backbone is not encoded again."""
    templates = check_templates(templates)
    identity = text_identity(backbone)
    rows = []
    for c, words in class_prompts(class_names, names).items():
        texts = [t.format(w) for w in words for t in templates]
        check_lengths(backbone, c, texts)
        key = text_key(identity, texts)
        row = cache.get(key) if cache is not None else None
        if row is None or row.ndim != 1:
            emb = backbone.encode_texts(texts)  # already normalised
            row = F.normalize(emb.mean(0), dim=-1).cpu().numpy().astype(np.float32)
            if cache is not None:
                cache.put(key, row)
        rows.append(row)
    return np.stack(rows).astype(np.float32)


def check_lengths(backbone, class_name: str, texts: list[str]) -> None:
    """A prompt longer than the backbone's text encoder reads stops with a UserError naming
    it (the encoder would otherwise cut it short without a word)."""
    for text in texts:
        n = backbone.count_tokens(text)
        if n > backbone.context_length:
            raise UserError(f"the prompt {text!r} of class {class_name!r} is {n} tokens long; the text encoder "
                            f"reads at most {backbone.context_length}: shorten the class's names or the templates")


def cached_logit_scale(backbone, cache=None) -> float:
    """CLIP's learned softmax temperature (about 100), from the cache when it is there."""
    key = text_key("logit_scale")
    hit = cache.get(key) if cache is not None else None
    if hit is not None and hit.shape == (1,):
        return float(hit[0])
    value = backbone.logit_scale
    if cache is not None:
        cache.put(key, np.array([value]))
    return value
