"""Every numeric option of the three backends is bounded on both sides: no infinity, no NaN,
no value that would hang a request or ask the provider for the absurd."""

from __future__ import annotations

import math
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel, ValidationError

from voxpipe_openai import OpenAIASROptions, OpenAILLMOptions, OpenAITTSOptions

MODELS: list[type[BaseModel]] = [OpenAILLMOptions, OpenAITTSOptions, OpenAIASROptions]


def numeric_fields() -> list[tuple[type[BaseModel], str]]:
    found = []
    for model in MODELS:
        for name, info in model.model_fields.items():
            types = getattr(info.annotation, "__args__", (info.annotation,))
            if any(t in (int, float) for t in types):
                found.append((model, name))
    return found


def bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    low = high = math.nan
    for bound in model.model_fields[name].metadata:
        if isinstance(bound, annotated_types.Gt | annotated_types.Ge):
            low = float(getattr(bound, "gt", getattr(bound, "ge", math.nan)))
        if isinstance(bound, annotated_types.Lt | annotated_types.Le):
            high = float(getattr(bound, "lt", getattr(bound, "le", math.nan)))
    return low, high


def test_the_numeric_options_are_the_ones_documented() -> None:
    assert {f"{m.__name__}.{n}" for m, n in numeric_fields()} == {
        f"{model.__name__}.{name}"
        for model in MODELS
        for name in ("connect_timeout_ms", "first_byte_timeout_ms", "idle_timeout_ms")
    } | {
        "OpenAILLMOptions.temperature",
        "OpenAILLMOptions.max_tokens",
        "OpenAITTSOptions.speed",
        "OpenAIASROptions.max_utterance_ms",
    }


@pytest.mark.parametrize(("model", "name"), numeric_fields())
def test_each_has_a_lower_and_an_upper_bound(model: type[BaseModel], name: str) -> None:
    low, high = bounds(model, name)
    assert math.isfinite(low) and math.isfinite(high) and low < high, (low, high)


@pytest.mark.parametrize(("model", "name"), numeric_fields())
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e18, -1e18, "1e400"])
def test_each_refuses_the_absurd(model: type[BaseModel], name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({name: value})
    assert info.value.errors()[0]["loc"] == (name,)


@pytest.mark.parametrize(("model", "name"), numeric_fields())
def test_each_takes_its_bounds(model: type[BaseModel], name: str) -> None:
    low, high = bounds(model, name)
    annotation = model.model_fields[name].annotation
    integer = int in getattr(annotation, "__args__", (annotation,))
    for value in (low + (1 if integer else 0.001), high):
        options = model.model_validate({name: int(value) if integer else value})
        assert getattr(options, name) == pytest.approx(value)
