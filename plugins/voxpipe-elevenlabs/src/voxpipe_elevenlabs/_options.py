"""The options both backends share: the voice, the server (``base_url``, refused when it
carries credentials) and the three timeouts. Every number is bounded; infinite and NaN ones
are refused."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxpipe.urls import checked_url, refuse
from voxpipe_elevenlabs._errors import KEY_ENV_VAR

#: The longest any timeout may be set to (5 minutes).
MAX_TIMEOUT_MS = 300_000.0
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
#: "George", one of the voices every account has.
DEFAULT_VOICE = "JBFqnCBsd6RMkjVDRZzb"
#: The raw PCM rates the API offers (``output_format=pcm_<rate>``).
PCM_RATES = (8_000, 16_000, 22_050, 24_000, 44_100)
PcmRate = Literal[8_000, 16_000, 22_050, 24_000, 44_100]


def timeout_ms(default: float, description: str) -> Any:
    """A timeout option in ms: above 0, at most ``MAX_TIMEOUT_MS``."""
    return Field(default, gt=0, le=MAX_TIMEOUT_MS, description=f"{description}, ms")


def unit(description: str) -> Any:
    """An optional voice setting in [0, 1] (None: the voice's own)."""
    return Field(None, ge=0, le=1, description=f"{description}, 0..1; default: the voice's")


class ElevenLabsOptions(BaseModel):
    """What both ElevenLabs backends take."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    #: URL schemes ``base_url`` may have (the socket backend also takes ws:// and wss://).
    schemes: ClassVar[tuple[str, ...]] = ("https", "http")

    voice_id: str = Field(
        DEFAULT_VOICE,
        pattern=r"^[A-Za-z0-9]{1,64}$",
        description="the voice's id (GET /v1/voices lists those of the key)",
    )
    model_id: str = Field(
        "eleven_flash_v2_5",
        pattern=r"^[A-Za-z0-9_.\-]{1,100}$",
        description="speech model (eleven_flash_v2_5, eleven_turbo_v2_5, eleven_multilingual_v2)",
    )
    base_url: str = Field(
        DEFAULT_BASE_URL,
        description="the server, without /v1: a regional endpoint "
        "(https://api.eu.residency.elevenlabs.io), a proxy or a local test server",
    )
    pcm_rate: PcmRate | None = Field(
        None,
        description="the PCM rate asked for (output_format=pcm_<rate>); default: the one "
        "nearest the session rate (44100 needs a Pro plan)",
    )
    stability: float | None = unit("voice stability")
    similarity_boost: float | None = unit("closeness to the original voice")
    style: float | None = unit("style exaggeration")
    speed: float | None = Field(
        None, ge=0.7, le=1.2, description="speaking speed, 1 = normal; default: the voice's"
    )
    connect_timeout_ms: float = timeout_ms(3_000, "longest wait to connect to the server")
    first_byte_timeout_ms: float = timeout_ms(
        5_000, "longest wait for the first audio once the server has text to speak"
    )
    idle_timeout_ms: float = timeout_ms(3_000, "longest wait between two chunks of audio")

    @field_validator("base_url", mode="wrap")
    @classmethod
    def _server_url(cls, value: Any, handler: Any) -> str:
        url = checked_url(cls, handler(value), cls.schemes, DEFAULT_BASE_URL, env_var=KEY_ENV_VAR)
        parts = urlsplit(url)  # without credentials now: it may be shown as it is
        if parts.query or parts.fragment:
            refuse(cls, "url_query", "must not have a query string or a fragment", url)
        if parts.path.rstrip("/").endswith("/v1"):
            refuse(
                cls,
                "url_path",
                "must be the server's root, without /v1 (the backend adds /v1/text-to-speech/...)",
                url,
            )
        return url.rstrip("/")

    def voice_settings(self) -> dict[str, float]:
        """The voice settings that are set, as the API names them."""
        settings = {
            "stability": self.stability,
            "similarity_boost": self.similarity_boost,
            "style": self.style,
            "speed": self.speed,
        }
        return {name: value for name, value in settings.items() if value is not None}

    def output_rate(self, session_rate: int) -> int:
        """The PCM rate to ask for: ``pcm_rate``, else the offered rate nearest the session's."""
        if self.pcm_rate is not None:
            return self.pcm_rate
        return min(PCM_RATES, key=lambda rate: (abs(rate - session_rate), -rate))
