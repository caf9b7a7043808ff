"""Every numeric option of the sim backends and their fault injection is bounded: inf, nan
and values that would hang a backend or allocate without limit are config errors naming the
option; the bounds themselves are accepted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from voxpipe import load_config
from voxpipe.errors import ConfigError
from voxpipe.sim import SimASROptions, SimLLMOptions, SimTTSOptions
from voxpipe.sim.faults import MAX_DELAY_MS, FaultOptions, Faults, Lognormal

INF, NAN = math.inf, math.nan

#: (section, backend, option, the largest value it takes, a value too small that is not
#: already refused by a lower bound of 0: it would hang or allocate without limit).
BOUNDS: list[tuple[str, str, str, float, float | None]] = [
    ("asr", "sim", "finalization_ms", 60_000, None),
    ("asr", "sim", "first_partial_ms", 60_000, None),
    ("asr", "sim", "partial_interval_ms", 60_000, None),
    ("asr", "sim", "confidence", 1, None),
    ("llm", "sim", "first_token_ms", 60_000, None),
    ("llm", "sim", "tokens_per_second", 1_000, 0.01),
    ("tts", "sim", "first_chunk_ms", 60_000, None),
    ("tts", "sim", "speed", 1_000, 0.01),
    ("tts", "sim", "words_per_minute", 1_000, 1),
    ("tts", "sim-stream", "speed", 1_000, 0.01),
    ("tts", "sim-stream", "words_per_minute", 1_000, 1),
    *(
        (kind, backend, option, top, None)
        for kind, backend in [("asr", "sim"), ("llm", "sim"), ("tts", "sim"), ("tts", "sim-stream")]
        for option, top in [
            ("error_rate", 1),
            ("retry_after_ms", 600_000),
            ("idle_timeout_ms", 600_000),
        ]
    ),
]
IDS = [f"{kind}-{backend}-{option}" for kind, backend, option, _, _ in BOUNDS]


def config(kind: str, backend: str, **options: Any) -> Any:
    return load_config({kind: {"backend": backend, **options}})


@pytest.mark.parametrize(("kind", "backend", "option", "top", "_low"), BOUNDS, ids=IDS)
@pytest.mark.parametrize("value", [INF, -INF, NAN])
def test_inf_and_nan_are_refused_naming_the_option(
    kind: str, backend: str, option: str, top: float, _low: float | None, value: float
) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] {option}: Input should be a finite"):
        config(kind, backend, **{option: value})


@pytest.mark.parametrize(("kind", "backend", "option", "top", "_low"), BOUNDS, ids=IDS)
def test_too_large_is_refused_and_the_largest_is_taken(
    kind: str, backend: str, option: str, top: float, _low: float | None
) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] {option}: Input should be less than"):
        config(kind, backend, **{option: top * 10})
    with pytest.raises(ConfigError, match=rf"\[{kind}\] {option}: "):
        config(kind, backend, **{option: 1e300})
    spec, options = config(kind, backend, **{option: top}).backend(kind)
    assert spec.name == backend and getattr(options, option) == top


@pytest.mark.parametrize(
    ("kind", "backend", "option", "low"),
    [(k, b, o, low) for k, b, o, _, low in BOUNDS if low is not None],
)
def test_a_rate_so_slow_it_would_hang_is_refused(
    kind: str, backend: str, option: str, low: float
) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] {option}: Input should be greater"):
        config(kind, backend, **{option: low})


def test_pitch_is_bounded_as_before() -> None:
    for value in (INF, NAN, 1_000, 40):
        with pytest.raises(ConfigError, match=r"\[tts\] pitch_hz: "):
            config("tts", "sim", pitch_hz=value)


@pytest.mark.parametrize("kind", ["asr", "llm", "tts"])
@pytest.mark.parametrize("seed", [-1, 2**64, 10**30, INF, NAN, 1.5])
def test_a_seed_is_a_64_bit_number(kind: str, seed: float) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] seed: "):
        config(kind, "sim", seed=seed)
    assert config(kind, "sim", seed=2**64 - 1).backend(kind)[1].seed == 2**64 - 1


@pytest.mark.parametrize("kind", ["asr", "llm", "tts"])
@pytest.mark.parametrize(
    "latency",
    [
        {"p50": INF, "p99": INF},
        {"p50": 300, "p99": INF},
        {"p50": NAN, "p99": 1_000},
        {"p50": 300, "p99": NAN},
        {"p50": 300, "p99": 60_001},
        {"p50": 90_000, "p99": 100_000},
        {"p50": 300, "p99": 1e300},
    ],
)
def test_a_latency_distribution_is_finite_and_bounded(kind: str, latency: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=rf"\[{kind}\] latency: .*finite and at most 60000 ms"):
        config(kind, "sim", latency=latency)


def test_the_widest_latency_distribution_never_waits_longer_than_the_bound() -> None:
    """p50 near 0 and p99 at the bound: a sigma of hundreds, whose draws would overflow or
    wait for ages; they are capped at the longest delay."""
    options = config("llm", "sim", latency={"p50": 1e-300, "p99": 60_000}).backend("llm")[1]
    faults = Faults(options, "llm")
    draws = [faults.first_output_ms(0) for _ in range(20_000)]
    assert max(draws) == MAX_DELAY_MS
    assert all(0 <= d <= MAX_DELAY_MS for d in draws)


def test_inf_and_nan_in_a_toml_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    for line in ("first_token_ms = inf", "first_token_ms = nan", "tokens_per_second = +inf"):
        path.write_text(f'[llm]\nbackend = "sim"\n{line}\n')
        key = line.split()[0]
        with pytest.raises(ConfigError, match=rf"agent.toml: .*\[llm\] {key}: .*finite"):
            load_config(path)


@pytest.mark.parametrize(
    "model", [FaultOptions, SimASROptions, SimLLMOptions, SimTTSOptions, Lognormal]
)
def test_every_numeric_option_has_an_upper_bound_and_no_inf_or_nan(
    model: type[BaseModel],
) -> None:
    """A new numeric option without bounds fails here."""
    assert model.model_config.get("allow_inf_nan") is False
    for name, info in model.model_fields.items():
        kinds = {info.annotation} | set(getattr(info.annotation, "__args__", ()))
        if not kinds & {int, float}:
            continue
        uppers = [m for m in info.metadata if isinstance(m, Le | Lt)]
        lowers = [m for m in info.metadata if isinstance(m, Ge | Gt)]
        assert uppers and lowers, f"{model.__name__}.{name} has no upper or lower bound"
