"""The model registry: data (registry.json) describing each known model and its preprocessing."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, Field

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")


class Preprocess(BaseModel):
    """Image preprocessing: resize the short side, centre-crop a square, scale to [0, 1], normalise."""

    resize_short: int
    crop: int
    interpolation: Literal["bicubic", "bilinear"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Int8Recipe(BaseModel):
    """How a tower becomes int8.

    dynamic: int8 weights, activations quantised at run time; suits MatMul-heavy transformers, needs no data.
    static: int8 weights and activations with ranges calibrated on sample photos; suits convolution nets,
    where dynamic quantisation is slow and inaccurate.
    keep_fp32: regular expressions for graph nodes left in fp32, chosen by per-layer sensitivity (quantise one
    layer, measure the cosine to fp32): EfficientNet's stem and first block (batch norm folded in, wide
    per-channel ranges) and BERT's feed-forward down-projections (activation outliers after GELU).
    """

    mode: Literal["dynamic", "static"] = "dynamic"
    keep_fp32: list[str] = []


class ImageTowerSpec(BaseModel):
    dims: int
    preprocess: Preprocess
    int8: Int8Recipe = Int8Recipe()


class TextTowerSpec(BaseModel):
    dims: int
    int8: Int8Recipe = Int8Recipe()
    tokenizer: Literal["clip", "wordpiece"]
    max_length: int
    pad_id: int = 0


class ModelSpec(BaseModel):
    """One registry entry."""

    name: str
    family: Literal["clip", "effnet-minilm"]
    source: str
    description: str
    for_matching: bool = Field(description="False for test-only models (random weights)")
    shared_space: bool = Field(description="True when image and text vectors are comparable")
    default_precision: Precision
    image: ImageTowerSpec
    text: TextTowerSpec


@cache
def load_registry() -> dict[str, ModelSpec]:
    """All known models by name."""
    raw = json.loads(resources.files("prodmatch.models").joinpath("registry.json").read_text())
    return {name: ModelSpec(name=name, **entry) for name, entry in raw.items()}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for NAME, or a ValueError listing the valid names."""
    registry = load_registry()
    if name not in registry:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(registry))}")
    return registry[name]


def parse_precisions(text: str) -> list[Precision]:
    """Comma-separated precisions, checked: "fp32,int8" -> ["fp32", "int8"]."""
    chosen = [p.strip() for p in text.split(",") if p.strip()]
    for precision in chosen:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return chosen  # type: ignore[return-value]
