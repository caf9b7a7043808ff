"""VoiceAgent: the one orchestrator.

Audio frames flow from the source through a tap (voice activity, recording) into the ASR.
A final transcript starts a turn: the LLM streams text, the phrase chunker hands each
phrase to TTS as soon as it is complete, and playout paces the audio into the sink in real
time, so TTS starts while the LLM is still writing and phrase k+1 is synthesized while
phrase k plays. Every crossing stamps the turn's metrics from the session clock, and the
budget watch turns those stamps into deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from voxpipe.audio import AudioFrame
from voxpipe.budgets import BudgetWatch, LatencyBudgets
from voxpipe.clock import SessionClock
from voxpipe.config import AgentConfig, load_config
from voxpipe.io.recorder import CallRecorder
from voxpipe.io.wav import NullSink
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import ASR, LLM, TTS, AudioSink, AudioSource, Message, Transcript
from voxpipe.registry import Registry
from voxpipe.text import PhraseChunker, PhrasePolicy
from voxpipe.vad import DEFAULT_THRESHOLD_DB, EnergyVAD

log = logging.getLogger("voxpipe")

EVENTS = ("state", "transcript", "turn", "budget")

#: How far synthesis may run ahead of playout, in frames (50 x 20 ms = 1 s): enough to ride
#: out a slow chunk, small enough that a long answer does not pile up in memory.
PLAYOUT_BUFFER_FRAMES = 50


class AgentState(StrEnum):
    LISTENING = "listening"
    PROCESSING_SPEECH = "processing_speech"
    THINKING = "thinking"
    SPEAKING = "speaking"
    INTERRUPTED = "interrupted"  # barge-in (not yet used)


@dataclass(frozen=True, slots=True)
class StateChange:
    old: AgentState
    new: AgentState
    at_ms: float


@dataclass(frozen=True, slots=True)
class BudgetMiss:
    """A budget's deadline passed while its stage was still running."""

    name: str
    turn: TurnMetrics
    at_ms: float


class _Turn:
    """A turn's metrics and deadlines, stamped together."""

    __slots__ = ("metrics", "watch")

    def __init__(self, metrics: TurnMetrics, watch: BudgetWatch) -> None:
        self.metrics, self.watch = metrics, watch

    def stamp(self, name: str, at_ms: float) -> None:
        if self.metrics.stamp(name, at_ms):
            self.watch.stamp(name, at_ms)


class VoiceAgent:
    """Runs conversations: ``await agent.run(source, sink)`` returns the session's metrics."""

    def __init__(
        self,
        asr: ASR,
        llm: LLM,
        tts: TTS,
        *,
        budgets: LatencyBudgets | None = None,
        system_prompt: str = "",
        phrases: PhrasePolicy | None = None,
        vad_threshold_db: float = DEFAULT_THRESHOLD_DB,
        backend_names: dict[str, str] | None = None,
    ) -> None:
        for kind, backend, protocol in (("asr", asr, ASR), ("llm", llm, LLM), ("tts", tts, TTS)):
            if not isinstance(backend, protocol):
                raise TypeError(
                    f"{kind}={backend!r} does not implement the {protocol.__name__} "
                    "protocol (see voxpipe.protocols)"
                )
        self.asr, self.llm, self.tts = asr, llm, tts
        self.budgets = budgets or LatencyBudgets()
        self.system_prompt = system_prompt
        self.phrases = phrases or PhrasePolicy()
        self.vad_threshold_db = vad_threshold_db
        self.backend_names = backend_names or {
            k: type(b).__name__ for k, b in (("asr", asr), ("llm", llm), ("tts", tts))
        }
        self.history: list[Message] = []
        self.metrics = SessionMetrics(self.backend_names, dict(self.budgets.items()))
        self.state = AgentState.LISTENING
        self._listeners: dict[str, list[Callable[[Any], None]]] = {e: [] for e in EVENTS}

    @classmethod
    def from_config(
        cls, config: AgentConfig | str | Path | dict[str, Any], *, registry: Registry | None = None
    ) -> VoiceAgent:
        """Build an agent and its backends from a config file, dict or ``AgentConfig``."""
        if not isinstance(config, AgentConfig):
            config = load_config(config, registry=registry)
        settings = config.agent
        return cls(
            config.build("asr"),
            config.build("llm"),
            config.build("tts"),
            budgets=config.budgets,
            system_prompt=settings.system_prompt,
            phrases=settings.phrases,
            vad_threshold_db=settings.vad_threshold_db,
            backend_names={k: getattr(config, k).backend for k in ("asr", "llm", "tts")},
        )

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Call ``callback(payload)`` on ``event``: "state" (StateChange), "transcript"
        (Transcript), "turn" (TurnMetrics, when a turn ends), "budget" (BudgetMiss).
        Callbacks run on the event loop: keep them quick."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; choose from {', '.join(EVENTS)}")
        self._listeners[event].append(callback)
        return callback

    async def run(
        self,
        source: AudioSource,
        sink: AudioSink | None = None,
        *,
        recorder: CallRecorder | None = None,
    ) -> SessionMetrics:
        """Hold a conversation until ``source`` ends and the last answer has been played."""
        session = _Session(self, sink or NullSink(), recorder)
        self.metrics = session.metrics
        try:
            await session.run(source)
        finally:
            await session.sink.aclose()
            if recorder is not None:
                recorder.close()
        return session.metrics

    async def aclose(self) -> None:
        """Close the backends."""
        for backend in (self.asr, self.llm, self.tts):
            await backend.aclose()

    async def __aenter__(self) -> VoiceAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _emit(self, event: str, payload: Any) -> None:
        for callback in self._listeners[event]:
            try:
                callback(payload)
            except Exception:
                log.exception("voxpipe %r event listener %r failed", event, callback)


class _Session:
    """One run of an agent: the clock, the turn being heard and the turns being answered."""

    def __init__(self, agent: VoiceAgent, sink: AudioSink, recorder: CallRecorder | None) -> None:
        self.agent, self.sink, self.recorder = agent, sink, recorder
        self.metrics = SessionMetrics(agent.backend_names, dict(agent.budgets.items()))
        self.clock = SessionClock()
        self.hearing: _Turn | None = None  # the turn whose user speech is coming in
        #: The user's voice on the actual frames: when speech started and last sounded.
        self.voice = EnergyVAD(agent.vad_threshold_db, endpoint_ms=math.inf)
        self.silent_since: float | None = None  # end of the last voiced frame, once silent
        self.answering: asyncio.Task[None] | None = None
        self.turns_started = 0

    async def run(self, source: AudioSource) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self.group = group
                transcripts = self.agent.asr.transcribe(self._tap(source.frames(self.clock)))
                async with aclosing(transcripts) as stream:  # type: ignore[type-var]
                    async for transcript in stream:
                        self._on_transcript(transcript)
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        if self.hearing is not None:
            self.hearing.watch.close()

    async def _tap(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[AudioFrame]:
        """Frames on their way to the ASR: record them and track the user's voice."""
        voice, recorder = self.voice, self.recorder
        async with aclosing(frames):  # type: ignore[type-var]
            async for frame in frames:
                if recorder is not None:
                    recorder.user.add(frame)
                was_speaking = voice.in_speech
                voice.update(frame)
                if voice.speech_start_ms is not None:  # in speech
                    if not was_speaking:  # speech confirmed, dated back to its first frame
                        if self.hearing is None:
                            self.hearing = self._new_turn()
                        self.hearing.stamp("speech_start", voice.speech_start_ms)
                    self._track_silence(voice.is_voiced(frame))
                yield frame

    def _track_silence(self, voiced: bool) -> None:
        """Arm the deadlines that run from the end of speech once silence starts; disarm them
        if the user goes on speaking."""
        turn = self.hearing
        if turn is None:
            return
        if voiced:
            if self.silent_since is not None:
                turn.watch.unstart("speech_end")
                self.silent_since = None
        elif self.silent_since is None and self.voice.last_voiced_end_ms is not None:
            self.silent_since = self.voice.last_voiced_end_ms
            turn.watch.start("speech_end", self.silent_since)

    def _new_turn(self) -> _Turn:
        self.turns_started += 1
        metrics = TurnMetrics(index=self.turns_started)
        return _Turn(
            metrics, BudgetWatch(self.agent.budgets, metrics, self.clock, [self._on_budget_miss])
        )

    def _on_budget_miss(self, name: str, turn: TurnMetrics) -> None:
        self.agent._emit("budget", BudgetMiss(name, turn, self.clock.now_ms()))

    def _on_transcript(self, transcript: Transcript) -> None:
        now = self.clock.now_ms()
        self.agent._emit("transcript", transcript)
        if self.hearing is None:  # the ASR heard speech our energy threshold did not
            self.hearing = self._new_turn()
            self.hearing.stamp("speech_start", now)
        turn = self.hearing
        if not transcript.is_final:
            turn.stamp("asr_first_partial", now)
            if self.agent.state is AgentState.LISTENING:
                self._set_state(AgentState.PROCESSING_SPEECH)
            return
        self.hearing, self.silent_since = None, None
        speech_end = self.voice.last_voiced_end_ms
        self.voice.end(now)  # the next voiced audio starts a new utterance
        turn.stamp("speech_end", speech_end if speech_end is not None else now)
        turn.metrics.endpoint_detected = transcript.endpoint_ms
        turn.stamp("asr_final", now)
        turn.metrics.user_text = transcript.text.strip()
        if not turn.metrics.user_text:
            turn.watch.close()
            self.turns_started -= 1
            return
        previous = self.answering
        self.answering = self.group.create_task(self._answer(turn, previous))

    async def _answer(self, turn: _Turn, previous: asyncio.Task[None] | None) -> None:
        """Think, speak and play one turn (after the previous turn has finished playing)."""
        if previous is not None:
            await asyncio.wait([previous])
        agent, clock = self.agent, self.clock
        turn.stamp("llm_request", clock.now_ms())
        self._set_state(AgentState.THINKING)
        messages = [Message("system", agent.system_prompt)] if agent.system_prompt else []
        messages += [*agent.history, Message("user", turn.metrics.user_text)]
        phrases: asyncio.Queue[str | None] = asyncio.Queue()
        audio: asyncio.Queue[AudioFrame | None] = asyncio.Queue(PLAYOUT_BUFFER_FRAMES)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._synthesize(turn, phrases, audio))
                group.create_task(self._play(turn, audio))
                await self._think(turn, messages, phrases)  # in this task: one hop less
        finally:
            turn.watch.close()
        agent.history += [messages[-1], Message("assistant", turn.metrics.agent_text)]
        self.metrics.turns.append(turn.metrics)
        if agent.state in (AgentState.SPEAKING, AgentState.THINKING):
            self._set_state(AgentState.LISTENING)
        agent._emit("turn", turn.metrics)

    async def _think(
        self, turn: _Turn, messages: list[Message], phrases: asyncio.Queue[str | None]
    ) -> None:
        clock, metrics = self.clock, turn.metrics
        chunker = PhraseChunker(self.agent.phrases)
        parts: list[str] = []
        async with aclosing(self.agent.llm.stream(messages)) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                if not parts:
                    turn.stamp("llm_first_token", clock.now_ms())
                parts.append(delta)
                for phrase in chunker.feed(delta):
                    self._hand_over(metrics, phrase, phrases)
        for phrase in chunker.flush():
            self._hand_over(metrics, phrase, phrases)
        phrases.put_nowait(None)
        turn.stamp("llm_done", clock.now_ms())
        metrics.agent_text = "".join(parts).strip()
        metrics.llm_deltas = len(parts)
        usage = getattr(self.agent.llm, "last_usage", None)  # token counts, if the LLM says
        if usage:
            metrics.extra["llm_usage"] = dict(usage)
        if len(parts) > 1:
            first = metrics.stamps["llm_first_token"]
            turn.watch.rate(
                "llm_token_generation", (metrics.stamps["llm_done"] - first) / (len(parts) - 1)
            )

    @staticmethod
    def _hand_over(metrics: TurnMetrics, phrase: str, phrases: asyncio.Queue[str | None]) -> None:
        if metrics.phrases == 0:
            metrics.first_phrase = phrase
        metrics.phrases += 1
        phrases.put_nowait(phrase)

    async def _synthesize(
        self,
        turn: _Turn,
        phrases: asyncio.Queue[str | None],
        audio: asyncio.Queue[AudioFrame | None],
    ) -> None:
        clock = self.clock
        gaps_ms, gaps = 0.0, 0
        while (phrase := await phrases.get()) is not None:
            turn.stamp("tts_request", clock.now_ms())
            asked: float | None = None  # when we last asked the TTS for a frame
            async with aclosing(self.agent.tts.synthesize(phrase)) as frames:  # type: ignore[type-var]
                async for frame in frames:
                    if asked is None:
                        turn.stamp("tts_first_audio", clock.now_ms())
                    else:
                        gaps_ms, gaps = gaps_ms + clock.now_ms() - asked, gaps + 1
                    if audio.full():  # the playout buffer is full: wait for room
                        await audio.put(frame)
                    else:
                        audio.put_nowait(frame)
                    asked = clock.now_ms()
        await audio.put(None)
        if gaps:
            turn.watch.rate("tts_chunk_generation", gaps_ms / gaps)

    async def _play(self, turn: _Turn, audio: asyncio.Queue[AudioFrame | None]) -> None:
        """Hand frames to the sink at the moment each should start playing."""
        clock, sink, recorder = self.clock, self.sink, self.recorder
        frame = await audio.get()
        if frame is None:
            turn.stamp("turn_end", clock.now_ms())
            return
        play_at = clock.now_ms()
        turn.stamp("playout_start", play_at)
        self._set_state(AgentState.SPEAKING)
        while frame is not None:
            placed = frame.at(play_at)
            await sink.write(placed)
            if recorder is not None:
                recorder.agent.add(placed)
            play_at += frame.duration_ms
            frame = audio.get_nowait() if not audio.empty() else await audio.get()
            if frame is not None:
                if play_at < (now := clock.now_ms()):
                    play_at = now  # TTS fell behind: play the frame as it arrives
                else:
                    await clock.sleep_until(play_at)
        await clock.sleep_until(play_at)  # until the last frame has played
        turn.stamp("turn_end", clock.now_ms())

    def _set_state(self, new: AgentState) -> None:
        old = self.agent.state
        if new is not old:
            self.agent.state = new
            self.agent._emit("state", StateChange(old, new, self.clock.now_ms()))


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside (possibly nested) task-group errors."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
