"""What backends look like to the orchestrator (plugin API v2), and the values they exchange.

- **ASR**: ``listen()`` opens a live stream. The session pushes every audio frame into it
  (``push`` never blocks) and tells it what the session's VAD decided (``speech_started``,
  ``speech_ended``); the stream yields events: speech started, partial and final
  transcripts, end of turn.
- **LLM**: ``chat(messages)`` streams events: text deltas, token usage, tool-call requests.
- **TTS**: ``synthesize(text)`` speaks one phrase; a TTS that takes text as it is written
  also has ``synthesize_stream(text_deltas)``. Both yield audio frames at the session rate
  and, when the provider says which text each stretch of audio speaks, ``Alignment``.

Every stream closes its connection when it is ``aclose()``d or its consumer is cancelled;
every backend has an ``aclose()`` for what it holds across streams. Plugin API v1 shapes
(``transcribe``, ``stream``) keep working through the adapters in ``voxpipe.compat``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.vad import Utterance

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool to be run (``arguments`` is JSON text, as written)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message sent to the LLM.

    An assistant message may carry the ``tool_calls`` the model asked for; a ``tool``
    message answers one of them (``tool_call_id``). ``interrupted`` marks an assistant
    message the user cut short: its ``content`` is what the user heard.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    interrupted: bool = False


# --- LLM events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of the reply's text."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one LLM request, when the provider reports them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the model stopped: "stop", "length" (its token limit), "content_filter",
    "tool_calls"... as the provider says; recorded as the turn's ``finish_reason``. A
    provider stream that ends without its end marker or finish reason is truncated: the
    backend raises a ``ProviderError`` instead of ending as if the reply were whole."""

    reason: str


LLMEvent = TextDelta | Usage | ToolCall | Finish


# --- TTS output ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alignment:
    """``text`` is spoken in ``[start_ms, end_ms)`` of the synthesis stream's audio (ms from
    its first sample, counting audio only). Emitted before or with the audio it describes;
    the pieces of one stream, joined, are the text it speaks."""

    text: str
    start_ms: float
    end_ms: float


TTSOutput = AudioFrame | Alignment


# --- ASR events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The ASR heard the user start speaking (its own voice detection)."""

    at_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word, heard in ``[start_ms, end_ms)`` of the session clock."""

    text: str
    start_ms: float
    end_ms: float
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the ASR heard so far (``is_final=False``) or, final, for a stretch of speech.

    The turn's text is its final transcripts joined. ``stability`` (0..1) says how likely a
    partial is to stay as it is, when the provider says. ``words``: its words timed on the
    session clock, when the provider times them. ``request_id``: the provider's id of the
    request (or connection) that heard it, recorded in the turn's
    ``extra["asr_request_ids"]``.
    """

    text: str
    is_final: bool
    confidence: float = 1.0
    #: Session ms at which an endpointer decided the utterance ended, if known.
    endpoint_ms: float | None = None
    stability: float | None = None
    words: tuple[Word, ...] = ()
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    """The ASR's own endpointer decided the user's turn is over (after its last final).
    ``speech_end_ms`` is where it thinks the speech ended, when it knows."""

    speech_end_ms: float | None = None


ASREvent = SpeechStarted | Transcript | EndOfTurn


# --- backends --------------------------------------------------------------------------


@runtime_checkable
class ASRStream(Protocol):
    """One live recognition: audio and the session VAD's marks in, ASR events out.

    ``speech_ended(utterance)`` means the session's endpointer decided the utterance is
    over: finalize it, and answer with a final ``Transcript`` (empty text if nothing was
    said). ``end_input()``: no more audio; finish the pending finals, then end the events.
    """

    def push(self, frame: AudioFrame) -> None: ...

    def speech_started(self, at_ms: float) -> None: ...

    def speech_ended(self, utterance: Utterance) -> None: ...

    def end_input(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[ASREvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ASR(Protocol):
    """Speech to text over a live audio stream (one stream per session, many turns).

    An ASR whose own endpointer emits ``EndOfTurn`` sets ``detects_end_of_turn = True``
    (needed for ``[turns] end_of_turn = "asr"``); one that relies on the session's VAD
    leaves it out.
    """

    def listen(self) -> ASRStream: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LLM(Protocol):
    """Chat messages in, the reply streamed out as events."""

    def chat(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TTS(Protocol):
    """One phrase in, audio frames (and alignment) out at the session rate, as soon as they
    exist. The session's phrase chunker feeds it complete phrases."""

    def synthesize(self, text: str) -> AsyncIterator[TTSOutput]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingTTS(Protocol):
    """Text in as it is written (LLM deltas), audio out as soon as the TTS can speak it.
    When a TTS has ``synthesize_stream`` the session feeds it the reply's deltas directly."""

    def synthesize_stream(self, text: AsyncIterator[str]) -> AsyncIterator[TTSOutput]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class VAD(Protocol):
    """Voice activity per frame; the session's turn-taking turns it into utterances.

    ``voxpipe.vad.EnergyVAD`` is the default. A VAD that needs longer windows than a frame
    buffers internally and answers for the frames it has decided.
    """

    def is_voiced(self, frame: AudioFrame) -> bool: ...


@runtime_checkable
class AudioSource(Protocol):
    """Where the user's audio comes from: frames stamped on the session clock, paced in time.

    A source with a ``bind(session)`` method is bound to the session that runs it first
    (scripted sources follow the agent's events).
    """

    def frames(self, clock: SessionClock) -> AsyncIterator[AudioFrame]: ...


@runtime_checkable
class AudioSink(Protocol):
    """Where the agent's audio goes: each frame is handed over when it should start playing.

    ``clear(at_ms)`` stops the output at session time ``at_ms``: drop queued audio, cut the
    frame playing, and return the session time the output actually went silent. A sink
    without ``clear`` (plugin API v1) goes silent at the end of the frame it is playing.
    """

    async def write(self, frame: AudioFrame) -> None: ...

    def clear(self, at_ms: float) -> float: ...

    async def aclose(self) -> None: ...


BackendKind = Literal["asr", "llm", "tts", "vad"]
BACKEND_KINDS: Sequence[BackendKind] = ("asr", "llm", "tts", "vad")


def tts_is_streaming(tts: Any) -> bool:
    """Whether ``tts`` takes text as a stream (``synthesize_stream``)."""
    return callable(getattr(tts, "synthesize_stream", None))
