"""The SDK client every backend holds: key from the environment, SDK retries off."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Self

import openai
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.errors import AuthError, ProviderError
from voxpipe_openai._errors import KEY_ENV_VAR, PROVIDER, redact


class ConnectionOptions(BaseModel):
    """Where requests go; shared by every OpenAI backend's options."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None,
        description="an OpenAI-compatible server (vLLM, llama.cpp, Ollama...), "
        "e.g. http://localhost:11434/v1; default: the SDK's (OPENAI_BASE_URL or api.openai.com)",
    )
    organization: str | None = Field(None, description="OpenAI organization id")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:8000/v1")
        return value


def api_key() -> str:
    """The key from ``OPENAI_API_KEY``; ``AuthError`` naming the variable when it is unset."""
    key = os.environ.get(KEY_ENV_VAR, "").strip()
    if not key:
        raise AuthError(
            f"{PROVIDER}: no API key. Set the {KEY_ENV_VAR} environment variable (keys are "
            "read from the environment only; a local server that ignores keys accepts any "
            "non-empty value).",
            provider=PROVIDER,
            env_var=KEY_ENV_VAR,
        )
    return key


def make_client(options: ConnectionOptions) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``options``; voxpipe's budgets decide on retries, not the SDK."""
    key = api_key()
    try:
        return openai.AsyncOpenAI(
            api_key=key,
            organization=options.organization,
            base_url=options.base_url,
            max_retries=0,
        )
    except openai.OpenAIError as exc:
        raise ProviderError(
            f"{PROVIDER}: cannot create the client: {redact(str(exc), key)}", provider=PROVIDER
        ) from None


class ClientBackend:
    """Holds the client; closes it on ``aclose()`` or at the end of ``async with``."""

    def __init__(self, options: ConnectionOptions) -> None:
        self._client = make_client(options)

    @property
    def _key(self) -> str:
        return self._client.api_key

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
