"""One error hierarchy for everything voxpipe raises on purpose.

Errors a user fixes by changing their input (config, backend name, audio file) derive from
``UsageError``; the CLI turns those into a one-paragraph message and exit code 2.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping


class VoxpipeError(Exception):
    """Base class of every voxpipe error."""


class UsageError(VoxpipeError):
    """The input is wrong (config, backend name, audio file): the message says how to fix it."""


class ConfigError(UsageError):
    """A config file or dict does not validate."""


class BackendNotFound(ConfigError):
    """No installed plugin provides the requested (kind, name) backend."""


class AudioFormatError(UsageError):
    """Audio that voxpipe cannot use: not a WAV, empty, unsupported sample width, NaN/inf."""


class PluginError(VoxpipeError):
    """A plugin could not be loaded or was written for another plugin API version."""


class ProviderError(VoxpipeError):
    """A backend's provider failed. ``retryable`` tells the budget layer whether to try again."""

    def __init__(self, message: str, *, provider: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


class AuthError(ProviderError):
    """The provider rejected the credentials (or none were found in the environment)."""

    def __init__(self, message: str, *, provider: str, env_var: str | None = None) -> None:
        super().__init__(message, provider=provider, retryable=False)
        self.env_var = env_var


class RateLimited(ProviderError):
    """The provider asked us to slow down; ``retry_after`` is in seconds when it said so."""

    def __init__(self, message: str, *, provider: str, retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider, retryable=True)
        self.retry_after = retry_after


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds a provider asks to wait before retrying, from ``retry-after-ms`` or
    ``retry-after`` (seconds or an HTTP date); None when it does not say (or says nonsense).
    For ``RateLimited(retry_after=...)``."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            seconds = max(when.timestamp() - time.time(), 0.0)  # a date: wall clock, by nature
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
