"""The floor under ``voxpipe bench``: the bench's conversation glued with bare asyncio.

One conversation over the bench's real-time source and edge sink, on the same sim backends
driven directly through their plugin API v2 methods, the way one would write it by hand for
this one scenario. Per conversation, two tasks: one reads the 20 ms frames, pushes each into
the ASR stream and endpoints the speech on frame energy (the same threshold, minimum speech
and endpoint silence as voxpipe's turn-taking); the other waits for final transcripts and
answers each: the LLM's text is cut with the same ``PhraseChunker``, each phrase synthesized
(one more task per reply, at most ``lookahead_ms`` of audio ahead of playout) and the frames
handed to the sink in real time. When an answer has played the source is cued for its next
line, as a session's "turn" event cues it.

What it leaves out, compared with voxpipe: barge-in (no interruption detection, pause,
resume or cut of the output), latency budgets and their policies (deadlines, retries,
fallback chains, fillers, apologies), per-turn metrics and stamps, the conversation history
(each request carries only the user's last words), events and the state machine (but the one
cue the source needs), error recovery (a provider error ends the conversation), what the user
heard (TTS alignment is ignored), streaming-input TTS, plugin API v1 adapters, pluggable
VADs, recording and configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.protocols import (
    ASR,
    LLM,
    TTS,
    ASRStream,
    AudioSink,
    AudioSource,
    LLMEvent,
    Message,
    TextDelta,
    Transcript,
)
from voxpipe.text import PhraseChunker, PhrasePolicy
from voxpipe.turns import TurnSettings
from voxpipe.vad import DEFAULT_THRESHOLD_DB, Utterance

#: How far synthesis may run ahead of playout, in ms of audio (as voxpipe's default).
LOOKAHEAD_MS = 1000.0
#: While the playout buffer is full, synthesis looks again after this much playout.
REFILL_MS = 200.0

Frames = asyncio.Queue[AudioFrame | None]


class _Cues:
    """Stands in for the session a ``SimSpeechSource`` binds to: it only needs to hear when
    an answer has played ("turn")."""

    def __init__(self) -> None:
        self.answered: list[Callable[[Any], None]] = []

    def on(self, event: str, callback: Callable[[Any], None]) -> None:
        if event == "turn":
            self.answered.append(callback)


async def converse(
    source: AudioSource,
    sink: AudioSink,
    asr: ASR,
    llm: LLM,
    tts: TTS,
    *,
    turns: TurnSettings | None = None,
    phrases: PhrasePolicy | None = None,
    threshold_db: float = DEFAULT_THRESHOLD_DB,
    lookahead_ms: float = LOOKAHEAD_MS,
) -> int:
    """Hold one conversation until the source ends and the last answer has played; returns
    how many user turns were answered."""
    turns = turns or TurnSettings()
    clock = SessionClock()
    cues = _Cues()
    bind = getattr(source, "bind", None)
    if bind is not None:
        bind(cues)
    stream = asr.listen()
    try:
        async with asyncio.TaskGroup() as group:
            answering = group.create_task(
                _answer(stream, llm, tts, sink, clock, phrases, lookahead_ms, cues)
            )
            await _listen(source, clock, stream, turns, threshold_db)
    finally:
        await stream.aclose()
        await sink.aclose()
    return answering.result()


async def _listen(
    source: AudioSource,
    clock: SessionClock,
    asr: ASRStream,
    turns: TurnSettings,
    threshold_db: float,
) -> None:
    """Frames into the ASR; speech starts after ``min_speech_ms`` of voiced frames and ends
    ``endpoint_ms`` after the last one."""
    min_speech, endpoint = turns.min_speech_ms, turns.endpoint_ms
    run_start: float | None = None  # voiced frames not yet long enough to be speech
    speech_start: float | None = None
    last_voiced = 0.0
    async with aclosing(source.frames(clock)) as frames:  # type: ignore[type-var]
        async for frame in frames:
            asr.push(frame)
            if frame.energy_db >= threshold_db:
                if speech_start is None:
                    if run_start is None:
                        run_start = frame.start_ms
                    if frame.end_ms - run_start < min_speech:
                        continue
                    speech_start, run_start = run_start, None
                    asr.speech_started(speech_start)
                last_voiced = frame.end_ms
            else:
                run_start = None
                if speech_start is not None and frame.end_ms - last_voiced >= endpoint:
                    asr.speech_ended(Utterance(speech_start, last_voiced, last_voiced + endpoint))
                    speech_start = None
    if speech_start is not None:
        asr.speech_ended(Utterance(speech_start, last_voiced, clock.now_ms()))
    asr.end_input()


async def _answer(
    asr: ASRStream,
    llm: LLM,
    tts: TTS,
    sink: AudioSink,
    clock: SessionClock,
    phrases: PhrasePolicy | None,
    lookahead_ms: float,
    cues: _Cues,
) -> int:
    """Answer each final transcript with words in it, one after another."""
    answered = 0
    async for event in asr:
        if type(event) is not Transcript or not event.is_final or not event.text.strip():
            continue
        frames: Frames = asyncio.Queue()
        async with asyncio.TaskGroup() as group:
            request = [Message("user", event.text.strip())]
            group.create_task(_synthesize(llm.chat(request), tts, phrases, frames, lookahead_ms))
            await _play(frames, sink, clock)
        answered += 1
        for cue in cues.answered:
            cue(None)
    return answered


async def _synthesize(
    events: AsyncIterator[LLMEvent],
    tts: TTS,
    phrases: PhrasePolicy | None,
    frames: Frames,
    lookahead_ms: float,
) -> None:
    """The LLM's text, cut into phrases, each synthesized into ``frames`` as soon as it is
    complete; ``None`` at the end."""
    chunker = PhraseChunker(phrases)
    async with aclosing(events) as deltas:  # type: ignore[type-var]
        async for event in deltas:
            if type(event) is TextDelta:
                for phrase in chunker.feed(event.text):
                    await _speak(tts, phrase, frames, lookahead_ms)
    for phrase in chunker.flush():
        await _speak(tts, phrase, frames, lookahead_ms)
    frames.put_nowait(None)


async def _speak(tts: TTS, phrase: str, frames: Frames, lookahead_ms: float) -> None:
    """One phrase's audio into ``frames``, waiting while they hold ``lookahead_ms``."""
    async with aclosing(tts.synthesize(phrase)) as audio:  # type: ignore[type-var]
        async for item in audio:
            if type(item) is AudioFrame:
                while frames.qsize() * item.duration_ms >= lookahead_ms:
                    await asyncio.sleep(REFILL_MS / 1000.0)
                frames.put_nowait(item)


async def _play(frames: Frames, sink: AudioSink, clock: SessionClock) -> None:
    """Each frame to the sink when it should start playing; returns when the last has
    played."""
    frame = await frames.get()
    play_at = clock.now_ms()
    while frame is not None:
        await sink.write(frame)
        play_at += frame.duration_ms
        frame = await frames.get()
        if play_at < clock.now_ms():
            play_at = clock.now_ms()  # synthesis fell behind: play the frame as it arrives
        else:
            await clock.sleep_until(play_at)
