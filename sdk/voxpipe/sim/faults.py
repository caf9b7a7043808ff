"""Fault injection for the sim backends: latency tails and provider failures, drawn once per
request from the backend instance's own random generator (``seed`` makes it reproducible)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from voxpipe.errors import AuthError, ProviderError, RateLimited

T = TypeVar("T")

FailWith = Literal["auth", "rate_limit", "server_error", "disconnect", "stall", "malformed"]
#: Failures that come instead of the first output; ``disconnect`` and ``stall`` come after it.
BEFORE_OUTPUT: frozenset[str] = frozenset({"auth", "rate_limit", "server_error", "malformed"})
PROVIDER = "sim"
_Z99 = 2.3263  # the 99th percentile of the standard normal distribution

# Bounds of the sim backends' numeric options: no option makes a backend hang or allocate
# without limit (inf and nan are refused everywhere; see ``SIM_CONFIG``).
#: The longest delay a sim backend waits before an output (ms); lognormal draws are capped.
MAX_DELAY_MS = 60_000.0
#: The longest wait a fault asks for or sits through: retry_after_ms, idle_timeout_ms (ms).
MAX_WAIT_MS = 600_000.0
#: The highest speed or rate (tokens a second, times real time, words a minute).
MAX_RATE = 1_000.0
#: The lowest speed or rate (a token every 10 s, a tenth of real time): lower would hang.
MIN_RATE = 0.1
#: The slowest simulated speech (6 s a word): slower allocates minutes of audio a word.
MIN_WORDS_PER_MINUTE = 10.0
#: The largest seed: 64 bits.
MAX_SEED = 2**64 - 1
#: The options models' config: unknown options and infinite or NaN numbers are errors.
SIM_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_LOG_MAX_DELAY = math.log(MAX_DELAY_MS)


class Lognormal(BaseModel):
    """First-output delays (ms) drawn from a lognormal distribution with this median (p50)
    and 99th percentile (p99)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    p50: float = Field(gt=0, le=MAX_DELAY_MS)
    p99: float = Field(gt=0, le=MAX_DELAY_MS)

    @model_validator(mode="after")
    def _ordered(self) -> Lognormal:
        if not 0 < self.p50 <= self.p99:
            raise ValueError(f"needs p99 >= p50 > 0, got p50 = {self.p50:g}, p99 = {self.p99:g}")
        return self

    @property
    def mu(self) -> float:
        return math.log(self.p50)

    @property
    def sigma(self) -> float:
        return (math.log(self.p99) - math.log(self.p50)) / _Z99


class FaultOptions(BaseModel):
    """The fault-injection options every sim backend's options model inherits."""

    model_config = SIM_CONFIG

    latency: Literal["fixed"] | Lognormal = Field(
        "fixed",
        description='delay to the first output: "fixed" (the backend\'s own delay option) or '
        "{p50 = <ms>, p99 = <ms>}, drawn per request from a lognormal distribution "
        "(p99 at most 60000 ms; draws are capped at 60000 ms)",
    )
    error_rate: float = Field(0, ge=0, le=1, description="probability that a request fails")
    fail_with: FailWith = Field("server_error", description="how a failing request fails")
    retry_after_ms: float | None = Field(
        None, ge=0, le=MAX_WAIT_MS, description="the wait a rate_limit failure asks for"
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="seed of the backend's random generator"
    )
    idle_timeout_ms: float = Field(
        5000, gt=0, le=MAX_WAIT_MS, description="silence after which a stalled stream fails"
    )

    @field_validator("latency", mode="wrap")
    @classmethod
    def _one_latency_problem(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """A bad latency is one problem, not one per member of the union."""
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "latency",
                'expected "fixed" or {p50 = <ms>, p99 = <ms>} with p99 >= p50 > 0, both '
                "finite and at most 60000 ms",
            ) from None


class Faults:
    """One backend instance's draws: each request's delay to its first output, and whether
    and how it fails. ``kind`` ("asr", "llm", "tts") names the backend in error messages."""

    def __init__(self, options: FaultOptions, kind: str) -> None:
        self.options = options
        self.kind = kind
        self.random = random.Random(options.seed)

    def first_output_ms(self, fixed_ms: float) -> float:
        """This request's delay to its first output: ``fixed_ms``, or a lognormal draw (at
        most ``MAX_DELAY_MS``: a wide distribution's far tail would never come)."""
        latency = self.options.latency
        if isinstance(latency, Lognormal):
            # lognormvariate's own draw, capped before exp() so it cannot overflow either
            log_ms = self.random.normalvariate(latency.mu, latency.sigma)
            return MAX_DELAY_MS if log_ms >= _LOG_MAX_DELAY else math.exp(log_ms)
        return fixed_ms

    def failure(self) -> FailWith | None:
        """How this request fails (``fail_with``), or None: it does not."""
        rate = self.options.error_rate
        if rate and self.random.random() < rate:
            return self.options.fail_with
        return None

    def error(self, failure: FailWith) -> ProviderError:
        """The error a request failing with ``failure`` raises."""
        where = f"{PROVIDER} {self.kind}"
        if failure == "auth":
            return AuthError(f"{where}: HTTP 401 unauthorized: key rejected", provider=PROVIDER)
        if failure == "rate_limit":
            ms = self.options.retry_after_ms
            wait = "" if ms is None else f" (retry after {ms / 1000:g} s)"
            return RateLimited(
                f"{where}: HTTP 429 too many requests{wait}",
                provider=PROVIDER,
                retry_after=None if ms is None else ms / 1000,
            )
        if failure == "malformed":
            message = f"{where}: malformed response: the payload does not parse"
            return ProviderError(message, provider=PROVIDER, retryable=False)
        idle = self.options.idle_timeout_ms
        reason = {
            "server_error": "HTTP 503 service unavailable",
            "disconnect": "connection reset",
            "stall": f"stream stalled: no data for {idle:g} ms (idle_timeout_ms)",
        }[failure]
        return ProviderError(f"{where}: {reason}", provider=PROVIDER, retryable=True)

    def inject(self, stream: AsyncGenerator[T, None], output: type) -> AsyncGenerator[T, None]:
        """``stream`` (one request's items, ``output`` the type of its outputs) as this
        request gets it: unchanged, or failing as the draw says."""
        failure = self.failure()
        return stream if failure is None else self._failing(stream, output, failure)

    async def _failing(
        self, stream: AsyncGenerator[T, None], output: type, failure: FailWith
    ) -> AsyncGenerator[T, None]:
        """Before-output failures come when the first output would have, instead of it;
        ``disconnect`` when the item after the first output would have; ``stall`` after
        ``idle_timeout_ms`` of waiting for that item."""
        error = self.error(failure)
        async with aclosing(stream):
            if failure in BEFORE_OUTPUT:
                async for item in stream:
                    if type(item) is output:
                        break
                raise error
            async for item in stream:
                yield item
                if type(item) is output:
                    break
            if failure == "stall":
                await asyncio.sleep(self.options.idle_timeout_ms / 1000.0)
            else:
                await anext(stream, None)
            raise error
