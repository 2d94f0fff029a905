"""Kinds of setting values, declared once and shared by the heads' signatures and the params
schema (pydantic reads the constraints; plain Python sees the base types).

A head declares its settings in its `__init__` signature: name, kind and default, in one
place (`fewclip.heads.base.Head.settings`); the params schema is assembled from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .settings import SAMPLERS

# the arguments of a head's signature that the pipeline supplies, not settings: the text prior and the seed
SUPPLIED = ("text_features", "logit_scale", "seed")

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Whole = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Rate = Annotated[float, Field(ge=0, lt=1)]  # a dropout rate, a held-out share: below 1
Grid = Annotated[list[Positive], Field(min_length=1)]  # candidates chosen on validation
Counts = Annotated[list[Count], Field(min_length=1)]
Fractions = Annotated[list[Fraction], Field(min_length=1)]
Text = Annotated[str, Field(min_length=1)]
Batch = Annotated[int, Field(ge=2)]  # a training batch with batch norm: two rows at least
Sampler = Literal[SAMPLERS]
