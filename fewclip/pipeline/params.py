"""`params.yaml`: its schema, checked before any work.

Every key of `params.yaml`, its type and its allowed values are declared once: the pipeline's
own keys here, as pydantic models; each head's settings in its signature (`heads.<name>`,
assembled by `schema` from the registered heads' declarations), and the allowed values of
the library's settings (decode routes, engines, samplers) in the library (`fewclip.settings`,
`fewclip.kinds`). `load_params()` reads the file, checks it and returns it as plain nested
dicts; any fault stops the stage with one line per fault that names the key and what is
allowed (the nearest valid key for an unknown one). Every stage calls it before it does any
work, and the `params` stage of `dvc.yaml` (`python -m fewclip.pipeline.check`) depends on the
whole file, so a key that no stage reads is checked too. It imports no torch.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator

from .. import UserError
from ..kinds import Count, Fraction, Positive, Rate, Text
from ..settings import DECODE_SETTINGS, ENGINES, PRECISIONS


def _count_or(word: str, least: int) -> BeforeValidator:
    """A whole number >= `least`, or `word`."""
    def check(v: Any) -> Any:
        if v == word or (isinstance(v, int) and not isinstance(v, bool) and v >= least):
            return v
        raise ValueError(f"must be '{word}' or a whole number >= {least}")
    return BeforeValidator(check)


def _device(v: Any) -> Any:
    if isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        return v
    raise ValueError("must be auto, cpu, cuda or cuda:N")


def _template(v: Any) -> Any:
    if isinstance(v, str) and v.count("{}") == 1:
        return v
    raise ValueError("must be a text with exactly one '{}' for the class name, such as 'a photo of a {}.'")


def _names(v: Any) -> Any:
    names = [v] if isinstance(v, str) else v
    if isinstance(names, list) and names and all(isinstance(n, str) and n.strip() for n in names):
        return v
    raise ValueError("must be a name or a non-empty list of names")


ShotCount = Annotated[Union[int, str], _count_or("all", 1)]
Workers = Annotated[Union[int, str], _count_or("auto", 0)]


class _Section(BaseModel):
    """A group of keys: every key required, no other key allowed, no type coercion."""
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


class ClassesParams(_Section):
    novel: list[Text]
    prompts: dict[str, Annotated[Union[str, list[str]], BeforeValidator(_names)]]


class GZSLParams(_Section):
    seen_bias: float


def inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies under it (as written, relative to the working
    directory, `.` and `..` resolved, symbolic links not followed)."""
    norm = lambda p: Path(os.path.abspath(os.path.expanduser(p)))  # noqa: E731
    return norm(folder) == norm(path) or norm(folder) in norm(path).parents


class DataParams(_Section):
    dir: Text
    train_dir: Text
    test_dir: Text
    zero_shot_dir: str
    pool_dir: Union[Text, None]

    @model_validator(mode="after")
    def _inside_dir(self) -> "DataParams":
        # dvc.yaml's split and embed stages depend on `dir`: a folder outside it would go unseen
        outside = [f"{key}={getattr(self, key)!r}" for key in ("train_dir", "test_dir", "zero_shot_dir", "pool_dir")
                   if getattr(self, key) and not inside(getattr(self, key), self.dir)]
        if outside:
            raise ValueError(f"{', '.join(outside)} must lie inside data.dir={self.dir!r} (the folder "
                             "`dvc add` tracks and the stages depend on); move the folder or change data.dir")
        return self


class SplitParams(_Section):
    val_fraction: Rate
    min_per_class: Count


class EmbedParams(_Section):
    device: Annotated[str, BeforeValidator(_device)]
    batch_size: Count
    num_workers: Workers
    decode: Literal[DECODE_SETTINGS]
    precision: Literal[PRECISIONS]
    engine: Literal[ENGINES]
    ray_address: Union[Text, None]
    cache_dir: Text
    feature_cache: Union[Text, None]
    templates: Annotated[list[Annotated[str, BeforeValidator(_template)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _ray_device(self) -> "EmbedParams":
        # the cluster's device sets the precision of the cached features: it must be named
        if self.engine == "ray" and self.device == "auto":
            raise ValueError("with engine: ray, device must be cpu or cuda (the cluster's device, which sets "
                             "the precision of the cached features), not auto")
        return self


class ShotsParams(_Section):
    ks: Annotated[list[ShotCount], Field(min_length=1)]
    seeds: Count
    val_per_class: Count
    heads: Annotated[list[Text], Field(min_length=1)]  # head names: see `schema`
    workers: Workers
    fit_cache: Union[Text, None]


class AuditParams(_Section):
    head: Text  # a head name: see `schema`
    folds: Annotated[int, Field(ge=2)]
    near_duplicate: Fraction
    pixel_duplicate: Fraction
    outlier_z: Positive
    gallery: Count


class SuggestParams(_Section):
    n: Count


class Params(_Section):
    model: Text
    mode: Literal["few", "zero"]
    head: Text
    seed: Annotated[int, Field(ge=0)]
    classes: ClassesParams
    gzsl: GZSLParams
    data: DataParams
    split: SplitParams
    embed: EmbedParams
    shots: ShotsParams
    audit: AuditParams
    suggest: SuggestParams
    heads: dict[str, Any]  # one group per head: see `schema`


def _head_section(name: str, settings: dict) -> type[BaseModel]:
    """`heads.<name>`: the head's settings, every one required, of the kinds its signature declares."""
    fields = {setting: (kind, ...) for setting, (kind, _) in settings.items()}
    return create_model(f"HeadParams_{name.replace('-', '_')}", __base__=_Section, **fields)


def schema(heads: dict | None = None) -> type[BaseModel]:
    """The schema. With `heads` ({name: {setting: (kind, default)}}: the registered heads'
    declarations, `fewclip.pipeline.heads_schema.declared_heads`), whole: `head`,
    `shots.heads`, `audit.head` and every `heads.<name>` group assembled from them. Without (the split
    and embed stages, which use no head and so do not depend on the heads' code), the heads'
    names and groups go unchecked."""
    if heads is None:
        return Params
    names = Literal[tuple(heads)]
    heads_params = create_model("HeadsParams", __base__=_Section, **{
        name.replace("-", "_"): (_head_section(name, settings), Field(alias=name)) for name, settings in heads.items()})
    shots = create_model("ShotsParams", __base__=ShotsParams, heads=(Annotated[list[names], Field(min_length=1)], ...))
    audit = create_model("AuditParams", __base__=AuditParams, head=(names, ...))
    return create_model("Params", __base__=Params, head=(names, ...), shots=(shots, ...), audit=(audit, ...),
                        heads=(heads_params, ...))


def load_params(path: str | Path = "params.yaml", heads: dict | None = None) -> dict[str, Any]:
    """`params.yaml`, checked against the `schema(heads)`, as plain nested dicts."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: parameter file not found (run from the repository root)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    check_params(params, path, heads)
    return params


def check_params(params: Any, path: str | Path = "params.yaml", heads: dict | None = None) -> None:
    """Raise one UserError listing every fault of `params` against `schema(heads)`."""
    if not isinstance(params, dict):
        raise UserError(f"{path}: expected a mapping of parameters, got {type(params).__name__}")
    try:
        root = schema(heads)
        root.model_validate(params)
    except ValidationError as e:
        faults = list(dict.fromkeys(_describe(err, root) for err in e.errors()))
        text = (f"{path}: {faults[0]}" if len(faults) == 1 else
                f"{path}: {len(faults)} problems:" + "".join(f"\n  {f}" for f in faults))
        raise UserError(text + f"\n  (`dvc exp run -S` writes its values into {path} even when the run fails: "
                        f"`git checkout {path}` restores the committed file)") from None


def _key(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The schema model that holds the keys at `loc` (None inside lists and free mappings)."""
    model: Any = root
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next((f for name, f in model.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _all_keys(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name,)
        keys.append(key)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _all_keys(field.annotation, key)
    return keys


def _describe(err: dict, root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    key, kind = _key(loc), err["type"]
    if kind == "extra_forbidden":
        section = _section_at(loc[:-1], root)
        allowed = _allowed_keys(section) if section else []
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.5)
        elsewhere = [k for k in _all_keys(root) if k[-1] == loc[-1]]  # e.g. a key that moved
        hint = (f"; did you mean {_key(elsewhere[0])}?" if elsewhere else
                f"; did you mean {_key(loc[:-1] + (near[0],))}?" if near else "")
        return f"unknown key {key}{hint} (allowed here: {', '.join(allowed)})"
    if kind == "missing":
        section = _section_at(loc, root)
        what = f" (a group with keys {', '.join(_allowed_keys(section))})" if section else ""
        return f"{key} is missing{what}; add it (the repository's params.yaml has every key)"
    value = err.get("input")
    section = _section_at(loc, root)
    if section is not None and value is None:  # `group:` with every key under it gone
        return f"{key} is empty; it needs the keys {', '.join(_allowed_keys(section))}"
    if kind == "literal_error":
        allowed = [str(v) for v in err.get("ctx", {}).get("expected", "").replace("'", "").split(" or ")]
        allowed = [a for part in allowed for a in part.split(", ") if a]
        near = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]}?" if near else ""
        return f"{key}={value!r} is not allowed: one of {', '.join(allowed)}{hint}"
    msg = err["msg"].removeprefix("Value error, ")
    for pydantic_words, ours in (("Input should be", "must be"), ("a valid integer", "a whole number"),
                                 ("a valid number", "a number"), ("a valid string", "a text"), ("a valid list", "a list"),
                                 ("a valid dictionary", "a mapping"), ("a valid boolean", "true or false")):
        msg = msg.replace(pydantic_words, ours)
    return f"{key}={value!r}: {msg}" if not isinstance(value, dict) else f"{key}: {msg}"
