"""What backends look like to the orchestrator, and the values they exchange.

Every method streams: ``transcribe`` yields transcripts while audio flows in, ``stream`` yields
text deltas while the model writes, ``synthesize`` yields audio frames while it speaks.
Backends close their connections when a stream is cancelled or ``aclose()``d, and have an
``aclose()`` of their own for whatever they hold across streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.vad import Utterance

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the ASR heard so far (``is_final=False``) or for a whole utterance (``True``)."""

    text: str
    is_final: bool
    confidence: float = 1.0
    #: Session ms at which the ASR's endpointer decided the utterance ended, if it knows.
    endpoint_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message sent to the LLM."""

    role: Role
    content: str


@runtime_checkable
class ASR(Protocol):
    """Speech to text over a live audio stream (one call per session, many utterances)."""

    def transcribe(self, audio: AsyncIterator[AudioFrame]) -> AsyncIterator[Transcript]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LLM(Protocol):
    """Chat messages in, a streamed reply out as text deltas.

    A backend that learns token counts may expose them after each stream as ``last_usage``
    (a dict such as ``{"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}``);
    the agent copies it into the turn's metrics (``extra["llm_usage"]``).
    """

    def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TTS(Protocol):
    """Text in, audio frames out at the session's sample rate, as soon as they exist."""

    def synthesize(self, text: str) -> AsyncIterator[AudioFrame]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AudioSource(Protocol):
    """Where the user's audio comes from: frames stamped on the session clock, paced in time."""

    def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]: ...


@runtime_checkable
class AudioSink(Protocol):
    """Where the agent's audio goes: each frame is handed over when it should start playing."""

    async def write(self, frame: AudioFrame) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VAD(Protocol):
    """Voice activity on the actual frames (``voxpipe.vad.EnergyVAD`` is the reference).

    ``update`` returns the utterance a frame's silence ended, if any; ``speech_start_ms`` and
    ``last_voiced_end_ms`` date the current one on the session clock; ``end`` closes it.
    """

    speech_start_ms: float | None
    last_voiced_end_ms: float | None

    def is_voiced(self, frame: AudioFrame) -> bool: ...

    def update(self, frame: AudioFrame) -> Utterance | None: ...

    def end(self, detected_ms: float) -> Utterance | None: ...


BackendKind = Literal["asr", "llm", "tts"]
BACKEND_KINDS: Sequence[BackendKind] = ("asr", "llm", "tts")
