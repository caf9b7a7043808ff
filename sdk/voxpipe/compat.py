"""Plugin API v1 backends, adapted to v2 so the session sees one shape.

v1 shapes: an ASR with ``transcribe(audio) -> AsyncIterator[Transcript]`` that endpoints on
its own (each final transcript ends the user's turn); an LLM with ``stream(messages) ->
AsyncIterator[str]`` that may expose token counts as ``last_usage`` after the stream; a TTS
with ``synthesize(text) -> AsyncIterator[AudioFrame]``, which already is a v2 per-phrase TTS.
Backends are recognised by shape, so objects passed to ``VoiceAgent`` directly work too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from voxpipe.audio import AudioFrame
from voxpipe.protocols import (
    ASREvent,
    EndOfTurn,
    LLMEvent,
    Message,
    TextDelta,
    Transcript,
    Usage,
)
from voxpipe.streams import Channel
from voxpipe.vad import Utterance


class V1ASR:
    """A v1 ASR as a v2 one: frames pushed in feed its audio iterator; each final is
    followed by ``EndOfTurn``. The session's VAD marks are not passed on (v1 cannot use
    them)."""

    detects_end_of_turn = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def listen(self) -> _V1ASRStream:
        return _V1ASRStream(self.inner)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _V1ASRStream:
    def __init__(self, inner: Any) -> None:
        self._audio: Channel[AudioFrame] = Channel()
        self._transcripts: AsyncIterator[Transcript] = inner.transcribe(self._audio)
        self._events = self._adapt()

    def push(self, frame: AudioFrame) -> None:
        self._audio.put(frame)

    def speech_started(self, at_ms: float) -> None:
        return None

    def speech_ended(self, utterance: Utterance) -> None:
        return None

    def end_input(self) -> None:
        self._audio.close()

    def __aiter__(self) -> AsyncIterator[ASREvent]:
        return self._events

    async def _adapt(self) -> AsyncGenerator[ASREvent, None]:
        async with aclosing(self._transcripts):  # type: ignore[type-var]
            async for transcript in self._transcripts:
                yield transcript
                if transcript.is_final:
                    yield EndOfTurn()

    async def aclose(self) -> None:
        """End the input and close the v1 stream (a consumer still iterating closes it
        itself when it is cancelled)."""
        self._audio.close()
        for stream in (self._events, self._transcripts):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None and not getattr(stream, "ag_running", False):
                await aclose()


class V1LLM:
    """A v1 LLM as a v2 one: text deltas as ``TextDelta``, ``last_usage`` as ``Usage``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def chat(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]:
        async with aclosing(self.inner.stream(messages)) as deltas:
            async for delta in deltas:
                yield TextDelta(delta)
        usage = getattr(self.inner, "last_usage", None)
        if isinstance(usage, dict):
            counts = {k: int(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens")}
            total = int(usage.get("total_tokens", sum(counts.values())))
            yield Usage(counts["prompt_tokens"], counts["completion_tokens"], total)

    async def aclose(self) -> None:
        await self.inner.aclose()


#: The methods that make a backend of each kind a v2 one (any of them).
_V2_METHODS = {
    "asr": ("listen",),
    "llm": ("chat",),
    "tts": ("synthesize", "synthesize_stream"),
    "vad": ("is_voiced",),
}
#: The v1 method of a kind and the adapter that makes it v2.
_V1_ADAPTERS: dict[str, tuple[str, type[Any]]] = {
    "asr": ("transcribe", V1ASR),
    "llm": ("stream", V1LLM),
}
_NEEDS = {
    "asr": "listen() (v2) or transcribe(audio) (v1)",
    "llm": "chat(messages) (v2) or stream(messages) (v1)",
    "tts": "synthesize(text) or synthesize_stream(text)",
    "vad": "is_voiced(frame)",
}


def as_v2(kind: str, backend: Any) -> Any:
    """``backend`` in its v2 shape (adapted if it is a v1 one); a ``TypeError`` names the
    protocol when it is neither."""
    if any(callable(getattr(backend, m, None)) for m in _V2_METHODS[kind]):
        return backend
    if kind in _V1_ADAPTERS:
        method, adapter = _V1_ADAPTERS[kind]
        if callable(getattr(backend, method, None)):
            return adapter(backend)
    raise TypeError(
        f"{kind}={backend!r} does not implement the {kind.upper()} protocol: it needs "
        f"{_NEEDS[kind]} and aclose() (see voxpipe.protocols)"
    )
