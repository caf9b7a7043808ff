"""Reply: one spoken answer, three stages joined by channels.

- generation: the LLM's events -> the reply's text, delta by delta (or a given text: ``say``)
- speech: the TTS over that text stream -> audio frames, at most ``lookahead_ms`` ahead of
  playout (a per-phrase TTS is fed by the phrase chunker; a streaming TTS gets the deltas)
- playout: frames handed to the sink at the moment each should start playing

``interrupt()`` silences the output at once and cancels the stages (their streams are
closed); ``pause()`` / ``resume()`` hold the output for a possible false interruption.
``heard_text`` is what the user heard, from the played position and the TTS alignment.
``await reply`` waits until it has ended, for whatever reason.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from voxpipe.attempts import StageRequest, describe
from voxpipe.audio import AudioFrame
from voxpipe.errors import AuthError, ProviderError
from voxpipe.protocols import (
    Alignment,
    Finish,
    Message,
    TextDelta,
    ToolCall,
    TTSOutput,
    Usage,
    tts_is_streaming,
)
from voxpipe.speech import SpokenText, synthesize_phrases
from voxpipe.streams import Channel
from voxpipe.text import SpeakableStream

if TYPE_CHECKING:
    from voxpipe.session import Session
    from voxpipe.turns import Turn

#: Synthesis refills the playout buffer in steps of this much audio, so it wakes once per
#: step rather than once per frame.
REFILL_MS = 200.0


class AudioChannel:
    """Frames from speech to playout, at most ``lookahead_ms`` of audio ahead of playout."""

    __slots__ = ("_closed", "_frames", "_getter", "_ms", "_putter", "_refill_at", "limit_ms")

    def __init__(self, lookahead_ms: float) -> None:
        self.limit_ms = lookahead_ms
        self._refill_at = max(lookahead_ms - REFILL_MS, 0.0)
        self._frames: deque[AudioFrame] = deque()
        self._ms = 0.0
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self._closed = False

    async def put(self, frame: AudioFrame) -> None:
        """Add a frame; waits while the buffer is full."""
        if self._ms >= self.limit_ms:
            self._putter = asyncio.get_running_loop().create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        self._frames.append(frame)
        self._ms += frame.duration_ms
        _wake(self._getter)

    def unget(self, frame: AudioFrame) -> None:
        """Put a frame back at the front (it was not played)."""
        self._frames.appendleft(frame)
        self._ms += frame.duration_ms
        _wake(self._getter)

    def get_nowait(self) -> AudioFrame | None:
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self._ms -= frame.duration_ms
        if self._putter is not None and self._ms <= self._refill_at:
            _wake(self._putter)
        return frame

    async def get(self) -> AudioFrame | None:
        """The next frame; ``None`` once the channel is closed and empty."""
        while not self._frames:
            if self._closed:
                return None
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        return self.get_nowait()

    def close(self) -> None:
        self._closed = True
        _wake(self._getter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Reply:
    """One spoken answer of a session. Made by the session (``session.say(text)`` or at the
    end of a user turn); ``interrupt()`` it, read ``heard_text``, ``await`` its end."""

    def __init__(
        self,
        session: Session,
        *,
        messages: Sequence[Message] | None = None,
        text: str | None = None,
        turn: Turn | None = None,
        interruptible: bool = True,
        audio: Sequence[TTSOutput] | None = None,
        in_history: bool = True,
    ) -> None:
        self.session, self.turn, self.interruptible = session, turn, interruptible
        self._messages, self._cached = messages, audio
        #: Whether what the user heard of it joins the history (fillers and apologies do not).
        self.in_history = in_history
        #: What the LLM has written so far (the given text for ``say``).
        self.text = text.strip() if text is not None else ""
        #: What the user heard: all of ``text`` once it has played, less if it was stopped.
        self.heard_text = ""
        self.tool_calls: list[ToolCall] = []
        #: "ok", or how it stopped: "interrupted" (the user), "cancelled" (a budget),
        #: "failed" (a provider; ``error`` says why).
        self.outcome = "ok"
        self.error: BaseException | None = None
        #: What ended the session during this reply (a rejected key, a bug), if anything:
        #: the turn is recorded as failed with it, but no apology follows.
        self.fatal: BaseException | None = None
        self.done = False
        #: The stage requests in flight, for the budget policies to hedge.
        self.llm_request: StageRequest[Any] | None = None
        self.tts_request: StageRequest[Any] | None = None
        #: The turn this reply fills in for while its answer is late (a filler).
        self.filler_for: Turn | None = None
        self.started_ms = 0.0
        self._text_out: Channel[str] = Channel()
        self._audio = AudioChannel(session.agent.lookahead_ms)
        self._spoken = SpokenText()
        self._task: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._asked: float | None = None  # when speech last asked the TTS for audio
        # playout
        self._playing: AudioFrame | None = None  # the frame last handed to the sink
        self._playing_offset = 0.0  # its position in the reply's audio
        self._played_ms = 0.0
        self._started_playout = False
        self._hold: asyncio.Event | None = None
        self._paused: tuple[float, float] | None = None  # (detected, silent) of the hold
        self._rest: AudioFrame | None = None  # the unplayed part of the frame a pause cut

    @property
    def interrupted(self) -> bool:
        return self.outcome == "interrupted"

    @property
    def active(self) -> bool:
        """Started or waiting to start, and neither ended nor stopped."""
        return not self.done and self.outcome == "ok"

    @property
    def held(self) -> bool:
        """Output stopped by a possible interruption, waiting to resume or be cancelled."""
        return self._hold is not None

    @property
    def playing(self) -> bool:
        return self._started_playout and self.active and not self.held

    def start(self) -> None:
        self.started_ms = self.session.clock.now_ms()
        self._task = self.session.group.create_task(self._run())

    def __await__(self) -> Generator[Any, None, bool]:
        return self._ended.wait().__await__()

    # --- control ---------------------------------------------------------------------------

    def interrupt(self, at_ms: float | None = None) -> None:
        """Stop now: the output goes silent at ``at_ms`` (now) or within the frame playing,
        the LLM and TTS streams are closed, and the history keeps only what was heard."""
        if not self.active:
            return
        if self._paused is not None:
            detected, silent = self._paused
        else:
            detected = self.session.clock.now_ms() if at_ms is None else at_ms
            silent = self._silence(detected)
        self.outcome = "interrupted"
        if self.turn is not None:
            metrics = self.turn.metrics
            metrics.interrupted = True
            metrics.mark_cut_short()
            self.turn.stamp("interruption_detected", detected)
            self.turn.stamp("output_silent", silent)
        self._stop()

    def cancel(self, reason: str) -> None:
        """Stop now because a budget said so (``reason``): like ``interrupt``, but the
        turn's outcome is "cancelled"."""
        if not self.active:
            return
        self._silence(self.session.clock.now_ms())
        self.outcome = "cancelled"
        if self.turn is not None:
            self.turn.metrics.mark_cut_short()
            self.turn.metrics.error = reason
        self._stop()

    def _stop(self) -> None:
        if self._task is None:
            self._finish()
        else:
            self._task.cancel()

    def pause(self, at_ms: float) -> float:
        """Stop the output at ``at_ms`` (now) and hold the rest; returns when it went silent."""
        if self._paused is not None or not self.active:
            return at_ms
        silent = self._silence(at_ms)
        self._hold = asyncio.Event()
        self._paused = (at_ms, silent)
        return silent

    def resume(self) -> None:
        """Carry on playing from where ``pause`` stopped."""
        if self._hold is None or self._paused is None:
            return
        detected, silent = self._paused
        if self.turn is not None:
            resumed = self.session.clock.now_ms()
            self.turn.metrics.false_interruptions.append(
                {"detected_ms": detected, "silent_ms": silent, "resumed_ms": resumed}
            )
        hold, self._hold, self._paused = self._hold, None, None
        hold.set()

    @property
    def silent_ms(self) -> float | None:
        """When a pause or interruption silenced the output, if one did."""
        if self._paused is not None:
            return self._paused[1]
        return None if self.turn is None else self.turn.metrics.stamps.get("output_silent")

    def _silence(self, at_ms: float) -> float:
        """Cut what is audible at ``at_ms``: the sink drops the rest of the frame playing (or
        plays it out, without ``clear``); the unplayed part is kept to be resumed."""
        playing = self._playing
        if playing is None or playing.end_ms <= at_ms:
            return at_ms
        session = self.session
        clear = getattr(session.sink, "clear", None)
        silent = clear(at_ms) if clear is not None else playing.end_ms
        silent = min(max(silent, at_ms), playing.end_ms)
        if session.recorder is not None:
            session.recorder.agent.cut(silent)
        played = max(silent - playing.start_ms, 0.0)
        self._played_ms = self._playing_offset + played
        cut = round(played * playing.sample_rate / 1000.0)
        if cut < len(playing.samples):
            self._rest = AudioFrame(playing.samples[cut:], playing.sample_rate, silent)
        self._playing = None
        return silent

    # --- the stages --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with asyncio.TaskGroup() as stages:
                stages.create_task(self._speak())
                stages.create_task(self._play())
                await self._generate()  # in this task: the request goes out one hop sooner
        except asyncio.CancelledError:
            if self.outcome == "ok":
                raise  # the session is being cancelled
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except BaseExceptionGroup as group:
            error = first_error(group)
            if isinstance(error, AuthError) or not isinstance(error, ProviderError):
                self.fatal = error
                self._cut(error)
                raise error from None  # a key or a bug: the session ends with it
            self._fail(error)
        finally:
            self._finish()
        if self.error is not None and self.session.failing:
            raise self.error  # too many failures in a row: the session ends with the last

    def _fail(self, error: ProviderError) -> None:
        """A provider failed: the reply ends, the conversation goes on."""
        self._cut(error)
        self.outcome, self.error = "failed", error

    def _cut(self, error: BaseException) -> None:
        """Stop the output at once; the turn is cut short by ``error``."""
        self._silence(self.session.clock.now_ms())
        if self.turn is not None:
            self.turn.metrics.mark_cut_short()
            self.turn.metrics.error = describe(error)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        stopped = self.outcome != "ok" or self.fatal is not None
        self.heard_text = self._spoken.heard(self._played_ms) if stopped else self.text
        if self.turn is not None:
            self.turn.metrics.outcome = "failed" if self.fatal is not None else self.outcome
            if stopped:
                now = self.session.clock.now_ms()
                self.turn.metrics.stamp("turn_end", self.silent_ms or now)
        self._ended.set()
        self.session.reply_ended(self)

    def _stamp(self, name: str, at_ms: float | None = None) -> None:
        if self.turn is not None and self.outcome == "ok":
            self.turn.stamp(name, self.session.clock.now_ms() if at_ms is None else at_ms)

    def _deadline(self, budget: str) -> float | None:
        """When ``budget`` runs out for a stage starting now (None if it is not set)."""
        ms = dict(self.session.agent.budgets.items()).get(budget)
        return None if ms is None else self.session.clock.now_ms() + ms

    def _request(self, stage: str, budget: str, start: Any, is_output: Any) -> StageRequest[Any]:
        """A request of ``stage`` over the session's chain for it, as ``budget`` says."""
        session = self.session
        return StageRequest(
            stage,
            session.chains[stage],
            start,
            is_output,
            clock=session.clock,
            retry=session.agent.budgets.action(budget) == "retry",
            deadline_ms=self._deadline(budget),
            attempts=self.turn.metrics.attempts if self.turn is not None else None,
        )

    async def _generate(self) -> None:
        """LLM events -> the text channel (or the given text, at once)."""
        out = self._text_out
        if self._messages is None:
            out.put(self.text)
            out.close()
            return
        turn, messages = self.turn, self._messages
        deltas = 0
        self._stamp("llm_request")
        self.llm_request = self._request(
            "llm", "llm_first_token", lambda llm: llm.chat(messages), _is_text
        )
        try:
            async with aclosing(self.llm_request.stream()) as events:
                async for event in events:
                    kind = type(event)
                    if kind is TextDelta:
                        if not deltas:
                            self._stamp("llm_first_token")
                        deltas += 1
                        self.text += event.text
                        out.put(event.text)
                    elif kind is Usage and turn is not None:
                        turn.metrics.extra["llm_usage"] = event.to_dict()
                    elif kind is ToolCall:
                        self.tool_calls.append(event)
                    elif kind is Finish and turn is not None:
                        turn.metrics.finish_reason = event.reason
            self._stamp("llm_done")
        finally:
            out.close()
            self.text = self.text.strip()
        if turn is not None:
            turn.metrics.llm_deltas = deltas
            stamps = turn.metrics.stamps
            if deltas > 1 and "llm_done" in stamps:
                per_delta = (stamps["llm_done"] - stamps["llm_first_token"]) / (deltas - 1)
                turn.watch.rate("llm_token_generation", per_delta)

    async def _speak(self) -> None:
        """The text stream -> TTS -> the audio channel, noting which text the audio speaks."""
        session, spoken, audio, clock = self.session, self._spoken, self._audio, self.session.clock
        tts = session.tts
        frames: AsyncIterator[TTSOutput]
        if self._cached is not None:
            frames = _replay(self._cached, self._text_out, spoken)
        elif tts_is_streaming(tts):
            frames = tts.synthesize_stream(self._fed_text())
        else:
            frames = synthesize_phrases(
                _ChosenTTS(self), self._text_out, session.agent.phrases, self._on_phrase
            )
        gaps_ms, gaps = 0.0, 0
        async with aclosing(frames) as items:  # type: ignore[type-var]
            async for item in items:
                if isinstance(item, Alignment):
                    spoken.align(item)
                    continue
                if self._asked is None:
                    self._stamp("tts_first_audio")
                else:
                    gaps_ms, gaps = gaps_ms + clock.now_ms() - self._asked, gaps + 1
                spoken.produced_ms += item.duration_ms
                await audio.put(item)
                self._asked = clock.now_ms()
        spoken.done = True
        audio.close()
        if gaps and self.turn is not None:
            self.turn.watch.rate("tts_chunk_generation", gaps_ms / gaps)

    def _on_phrase(self, phrase: str) -> None:
        """The phrase chunker hands a phrase to a per-phrase TTS."""
        self._asked = None  # its first frame is a first frame, not a gap
        self._spoken.begin(phrase)
        if self.turn is not None:
            metrics = self.turn.metrics
            if metrics.phrases == 0:
                metrics.first_phrase = phrase
                self._stamp("tts_request")
            metrics.phrases += 1

    async def _fed_text(self) -> AsyncIterator[str]:
        """The text as a streaming TTS reads it: the deltas without the markdown it would
        read aloud, a word at a time (see ``SpeakableStream``)."""
        speakable = SpeakableStream()
        async for delta in self._text_out:
            if piece := speakable.feed(delta):
                yield self._feeding(piece)
        if piece := speakable.flush():
            yield self._feeding(piece)

    def _feeding(self, piece: str) -> str:
        """Note ``piece`` as given to the TTS (the first one is its request)."""
        if self.turn is not None and self.turn.metrics.phrases == 0:
            self.turn.metrics.first_phrase, self.turn.metrics.phrases = piece.strip(), 1
            self._stamp("tts_request")
        self._spoken.extend(piece)
        return piece

    async def _play(self) -> None:
        """Hand frames to the sink at the moment each should start playing, after any reply
        of this session that is playing already."""
        session, audio, clock = self.session, self._audio, self.session.clock
        sink, recorder = session.sink, session.recorder
        frame = await audio.get()
        if frame is None:  # nothing to say (an empty reply)
            self._stamp("turn_end")
            return
        async with session.output:
            play_at = clock.now_ms()
            while True:
                if self._hold is not None:  # paused: keep what is unplayed, wait, carry on
                    if frame is not None:
                        audio.unget(frame)
                    if self._rest is not None:
                        audio.unget(self._rest)
                        self._rest = None
                    await self._hold.wait()
                    play_at = clock.now_ms()
                    frame = audio.get_nowait() or await audio.get()
                    continue
                if frame is None:
                    break
                if not self._started_playout:
                    self._started_playout = True
                    self._first_sound(play_at)
                    session.refresh_state()
                placed = frame.at(play_at)
                self._playing, self._playing_offset = placed, self._played_ms
                await sink.write(placed)
                if recorder is not None:
                    recorder.agent.add(placed)
                self._played_ms += frame.duration_ms
                play_at += frame.duration_ms
                frame = audio.get_nowait() or await audio.get()
                if frame is not None and play_at < (now := clock.now_ms()):
                    play_at = now  # TTS fell behind: play the frame as it arrives
                else:
                    await clock.sleep_until(play_at)  # its start, or the end of the last one
        self._playing = None
        self._stamp("turn_end")

    def _first_sound(self, at_ms: float) -> None:
        """The first of this reply is heard: its turn's answer begins (or, for a filler, the
        turn's first sound)."""
        if self.filler_for is not None:
            self.filler_for.stamp("first_sound", at_ms)
        self._stamp("first_sound", at_ms)
        self._stamp("playout_start", at_ms)


class _ChosenTTS:
    """A reply's per-phrase TTS over the session's chain: the first phrase is requested as
    the policies say (retried, moved on, hedged), the rest from the backend that spoke it,
    so the voice never changes within a reply."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def synthesize(self, text: str) -> AsyncIterator[TTSOutput]:
        first = self.reply.tts_request
        if first is not None and first.winner is not None:
            return first.winner.synthesize(text)  # type: ignore[no-any-return]
        request = self.reply._request(
            "tts", "tts_first_chunk", lambda tts: tts.synthesize(text), _is_audio
        )
        self.reply.tts_request = request
        return request.stream()


async def _replay(
    items: Sequence[TTSOutput], text: Channel[str], spoken: SpokenText
) -> AsyncGenerator[TTSOutput, None]:
    """Audio synthesized before (a filler), spoken again: no TTS request."""
    async for piece in text:
        spoken.begin(piece)
    for item in items:
        yield item


def _is_text(event: Any) -> bool:
    return type(event) is TextDelta


def _is_audio(item: Any) -> bool:
    return type(item) is AudioFrame


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside (possibly nested) task-group errors."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
