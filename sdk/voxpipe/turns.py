"""Turn-taking: one input path, the end of the user's turn, and interruptions.

The session's input task reads the source and, per frame: records it, pushes it into the
ASR stream, asks the one VAD whether it is voiced and tracks speech (``VoiceTracker``). The
VAD is the one source of ``speech_start`` and ``speech_end``; the ASR is told where each
utterance starts and ends. The user's turn ends at the VAD's silence window once its final
transcript is in, at the ASR's own end-of-turn signal, or at whichever comes first.

While the agent is answering, user speech of ``min_interruption_ms`` (and, if set,
``min_interruption_words``) interrupts it: output stops at once. If the user's words confirm
it, the reply is cancelled; if no words come within ``resume_timeout_ms`` (a cough, a door)
the reply resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame
from voxpipe.budgets import BudgetWatch
from voxpipe.errors import AuthError, ProviderError
from voxpipe.events import AgentState
from voxpipe.metrics import TurnMetrics
from voxpipe.protocols import VAD, ASRStream, AudioSource, EndOfTurn, SpeechStarted, Transcript
from voxpipe.vad import Utterance

if TYPE_CHECKING:
    from voxpipe.reply import Reply
    from voxpipe.session import Session

log = logging.getLogger("voxpipe")

EndOfTurnMode = Literal["vad", "asr", "first"]


class TurnSettings(BaseModel):
    """``[turns]``: when the user's turn ends and when the user interrupts the agent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    end_of_turn: EndOfTurnMode = Field(
        "vad",
        description="what ends the user's turn: the VAD's silence window ('vad'), the ASR's "
        "own end-of-turn signal ('asr'), or whichever comes first ('first')",
    )
    endpoint_ms: float = Field(200, ge=20, le=10_000, description="silence that ends speech")
    min_speech_ms: float = Field(
        60, ge=0, le=2_000, description="voiced audio shorter than this is a click, not speech"
    )
    final_timeout_ms: float = Field(
        2_000, gt=0, le=60_000, description="longest wait for the ASR's final after speech ends"
    )
    interruptions: bool = Field(True, description="the user may interrupt the agent")
    min_interruption_ms: float = Field(
        300, ge=0, le=10_000, description="user speech this long interrupts the agent"
    )
    min_interruption_words: int = Field(
        0, ge=0, le=20, description="...and only once the ASR has heard this many words"
    )
    resume_false_interruptions: bool = Field(
        True, description="resume the reply when an interruption brings no words"
    )
    resume_timeout_ms: float = Field(
        2_000, gt=0, le=30_000, description="how long an interruption may go without words"
    )


class VoiceTracker:
    """Speech on the VAD's per-frame decisions. Speech starts once ``min_speech_ms`` of
    consecutive voiced audio has been heard, dated back to the first of those frames; it ends
    ``endpoint_ms`` after the last voiced frame, dated to the end of that frame."""

    __slots__ = (
        "_run_start_ms",
        "endpoint_ms",
        "last_voiced_end_ms",
        "min_speech_ms",
        "speech_start_ms",
    )

    def __init__(self, min_speech_ms: float = 60.0, endpoint_ms: float = 200.0) -> None:
        self.min_speech_ms = min_speech_ms
        self.endpoint_ms = endpoint_ms
        self.speech_start_ms: float | None = None
        self.last_voiced_end_ms: float | None = None
        self._run_start_ms: float | None = None  # voiced frames not yet long enough for speech

    @property
    def in_speech(self) -> bool:
        return self.speech_start_ms is not None

    def update(self, frame: AudioFrame, voiced: bool) -> Utterance | None:
        """Feed one frame's decision; returns the utterance this frame's silence ended."""
        if voiced:
            if self.speech_start_ms is None:
                if self._run_start_ms is None:
                    self._run_start_ms = frame.start_ms
                if frame.end_ms - self._run_start_ms < self.min_speech_ms:
                    return None
                self.speech_start_ms, self._run_start_ms = self._run_start_ms, None
            self.last_voiced_end_ms = frame.end_ms
            return None
        self._run_start_ms = None
        last = self.last_voiced_end_ms
        if self.speech_start_ms is None or last is None or frame.end_ms - last < self.endpoint_ms:
            return None
        return self.end(last + self.endpoint_ms)

    def end(self, detected_ms: float) -> Utterance | None:
        """Close the current utterance now; ``None`` if there is none."""
        if self.speech_start_ms is None or self.last_voiced_end_ms is None:
            return None
        utterance = Utterance(self.speech_start_ms, self.last_voiced_end_ms, detected_ms)
        self.speech_start_ms = None
        return utterance


class Turn:
    """One turn's metrics and deadlines, stamped together."""

    __slots__ = ("metrics", "watch")

    def __init__(self, metrics: TurnMetrics, watch: BudgetWatch) -> None:
        self.metrics, self.watch = metrics, watch

    def stamp(self, name: str, at_ms: float) -> None:
        if self.metrics.stamp(name, at_ms):
            self.watch.stamp(name, at_ms)


class TurnTaker:
    """The session's ears: runs its input, decides when the user's turn ends and when the
    user interrupts the agent, and tells the session."""

    def __init__(self, session: Session, settings: TurnSettings, vad: VAD, asr: ASRStream) -> None:
        self.session, self.settings, self.vad, self.asr = session, settings, vad, asr
        self.voice = VoiceTracker(settings.min_speech_ms, settings.endpoint_ms)
        self.hearing: Turn | None = None  # the user's turn being heard
        self._finals: list[str] = []
        self._partial = ""
        self._awaiting_final = False  # speech heard that no final transcript covers yet
        self._utterance: Utterance | None = None  # the VAD's last ended utterance this turn
        self._vad_heard = False  # the VAD heard speech in this turn (else only the ASR did)
        self._silent_since: float | None = None
        self._final_timer: asyncio.TimerHandle | None = None
        self._held: list[Reply] = []  # replies paused by an interruption without words yet
        self._resume_timer: asyncio.TimerHandle | None = None
        self._resumed_speech: float | None = None  # speech that already had its chance
        self._input_ended = False

    # --- input -----------------------------------------------------------------------------

    async def listen(self, source: AudioSource) -> None:
        """Read the source until it ends: the session's input task."""
        recorder = self.session.recorder
        is_voiced, voice = self.vad.is_voiced, self.voice
        async with aclosing(source.frames(self.session.clock)) as frames:  # type: ignore[type-var]
            async for frame in frames:
                if recorder is not None:
                    recorder.user.add(frame)
                self.asr.push(frame)
                was_speaking = voice.speech_start_ms is not None
                voiced = is_voiced(frame)
                ended = voice.update(frame, voiced)
                if ended is not None:
                    self._speech_ended(ended)
                elif voice.speech_start_ms is not None:
                    if not was_speaking:
                        self._speech_started(voice.speech_start_ms)
                    self._track_silence(voiced)
                    if self.session.replies:
                        self._check_interruption(frame.end_ms)
        last = voice.end(self.session.clock.now_ms())
        if last is not None:
            self._speech_ended(last)
        self._input_ended = True
        self.asr.end_input()

    async def hear(self) -> None:
        """Handle the ASR's events until its stream ends. A provider error costs the turn
        being heard, and the ASR is opened again (the next backend of its chain)."""
        while True:
            try:
                async for event in self.asr:
                    kind = type(event)
                    if kind is Transcript:
                        self._on_transcript(event)  # type: ignore[arg-type]
                    elif kind is EndOfTurn:
                        self._on_asr_end_of_turn(event)  # type: ignore[arg-type]
                    elif kind is SpeechStarted:
                        self._on_asr_speech(event)  # type: ignore[arg-type]
                break
            except ProviderError as error:
                if isinstance(error, AuthError):
                    raise
                await self._recover(error)
        if self.hearing is not None and (self._finals or self._partial):
            if self._partial:  # input over: what was heard is what was said
                self._finals.append(self._partial)
            self._end_turn(self._speech_end(), self.session.clock.now_ms())

    async def _recover(self, error: ProviderError) -> None:
        """The ASR failed: the turn being heard fails with it; listen on with a new stream."""
        turn, self.hearing = self.hearing, None
        self._finals, self._partial, self._awaiting_final = [], "", False
        self._utterance, self._vad_heard = None, False
        self._cancel(self._final_timer)
        self.session.turn_failed(turn, error)  # raises when the session is to end
        failed = self.asr
        self.asr = self.session.reopen_asr()
        await failed.aclose()
        if self.voice.speech_start_ms is not None:
            self.asr.speech_started(self.voice.speech_start_ms)
        if self._input_ended:
            self.asr.end_input()

    def close(self) -> None:
        """Cancel the timers (the session is over)."""
        for timer in (self._final_timer, self._resume_timer):
            if timer is not None:
                timer.cancel()
        if self.hearing is not None:
            self.hearing.watch.close()

    # --- the VAD ---------------------------------------------------------------------------

    def _speech_started(self, at_ms: float) -> None:
        self.asr.speech_started(at_ms)
        if self.hearing is None:
            self.hearing = self.session.new_turn()
            self.hearing.stamp("speech_start", at_ms)
        self._utterance, self._vad_heard = None, True
        self._awaiting_final = True
        self._cancel(self._final_timer)

    def _track_silence(self, voiced: bool) -> None:
        """Arm the deadlines that run from the end of speech once silence starts; disarm them
        if the user goes on speaking."""
        turn = self.hearing
        if turn is None:
            return
        if voiced:
            if self._silent_since is not None:
                turn.watch.unstart("speech_end")
                self._silent_since = None
        elif self._silent_since is None and self.voice.last_voiced_end_ms is not None:
            self._silent_since = self.voice.last_voiced_end_ms
            turn.watch.start("speech_end", self._silent_since)

    def _speech_ended(self, utterance: Utterance) -> None:
        self._silent_since = None
        if self.settings.end_of_turn != "asr":
            self.asr.speech_ended(utterance)
        if self.hearing is None:
            return
        self._utterance = utterance
        self._maybe_end_turn()
        if self.hearing is not None and self.settings.end_of_turn != "asr":
            at = utterance.detected_ms + self.settings.final_timeout_ms
            self._final_timer = self.session.clock.call_at(at, self._final_timed_out)

    # --- the ASR ---------------------------------------------------------------------------

    def _on_transcript(self, transcript: Transcript) -> None:
        session = self.session
        session.emit("transcript", transcript)
        text = transcript.text.strip()
        if self.hearing is None:
            if not text:
                return  # the answer to a flush of speech that held no words
            self.hearing = session.new_turn()  # the ASR heard speech the VAD did not
            self.hearing.stamp("speech_start", session.clock.now_ms())
        if transcript.request_id is not None:
            ids = self.hearing.metrics.extra.setdefault("asr_request_ids", [])
            if transcript.request_id not in ids:
                ids.append(transcript.request_id)
        if transcript.is_final:
            if text:
                self._finals.append(text)
            self._partial, self._awaiting_final = "", False
        else:
            self.hearing.stamp("asr_first_partial", session.clock.now_ms())
            self._partial, self._awaiting_final = text, True
        self._on_words()
        if not transcript.is_final:
            if session.state is AgentState.LISTENING:
                session.set_state(AgentState.PROCESSING_SPEECH)
        else:
            self._maybe_end_turn()

    def _on_asr_end_of_turn(self, event: EndOfTurn) -> None:
        if self.settings.end_of_turn == "vad" or self.hearing is None:
            return
        now = self.session.clock.now_ms()
        speech_end = self._speech_end(event.speech_end_ms)
        if self.voice.in_speech:  # the ASR decided first: further voice is a new utterance
            self.voice.end(now)
        self._end_turn(speech_end, now)

    def _on_asr_speech(self, event: SpeechStarted) -> None:
        if self.hearing is None and not self.voice.in_speech:
            self.hearing = self.session.new_turn()
            at = event.at_ms if event.at_ms is not None else self.session.clock.now_ms()
            self.hearing.stamp("speech_start", at)
            self._awaiting_final = True

    # --- end of turn -----------------------------------------------------------------------

    def _maybe_end_turn(self) -> None:
        """Mode vad / first: the VAD's silence window has passed and the final is in (or the
        final is in for speech that only the ASR heard)."""
        if (
            self.hearing is None
            or self.settings.end_of_turn == "asr"
            or self.voice.in_speech
            or self._awaiting_final
        ):
            return
        if self._utterance is not None:
            self._end_turn(self._utterance.end_ms, self._utterance.detected_ms)
        elif not self._vad_heard and self._finals:
            now = self.session.clock.now_ms()
            self._end_turn(now, now)

    def _final_timed_out(self) -> None:
        self._final_timer = None
        if self.hearing is not None and self._utterance is not None and not self.voice.in_speech:
            log.warning(
                "voxpipe: no final transcript %.0f ms after speech ended; using what was heard",
                self.settings.final_timeout_ms,
            )
            if self._partial:
                self._finals.append(self._partial)
            self._end_turn(self._utterance.end_ms, self._utterance.detected_ms)

    def _speech_end(self, fallback: float | None = None) -> float:
        if self._utterance is not None:
            return self._utterance.end_ms
        if self.voice.in_speech and self.voice.last_voiced_end_ms is not None:
            return self.voice.last_voiced_end_ms
        return fallback if fallback is not None else self.session.clock.now_ms()

    def _end_turn(self, speech_end: float, detected_ms: float) -> None:
        turn, session = self.hearing, self.session
        assert turn is not None
        text = " ".join(self._finals).strip()
        self.hearing, self._finals, self._partial = None, [], ""
        self._awaiting_final, self._utterance, self._silent_since = False, None, None
        self._vad_heard = False
        self._cancel(self._final_timer)
        if not text:
            session.drop_turn(turn)
            if self._held:
                self._resume()  # the interruption held no words
            return
        now = session.clock.now_ms()
        turn.stamp("speech_end", min(speech_end, now))
        turn.metrics.endpoint_detected = detected_ms
        turn.stamp("asr_final", now)
        turn.metrics.user_text = text
        if self._held:
            self._confirm()
        elif self._targets():
            if len(text.split()) < max(1, self.settings.min_interruption_words):
                session.drop_turn(turn)  # too few words to interrupt the agent for
                return
            self._interrupt(now, hold=False)
        session.answer(turn)

    # --- interruptions ---------------------------------------------------------------------

    def _targets(self) -> list[Reply]:
        if not self.settings.interruptions:
            return []
        return [r for r in self.session.replies if r.interruptible and r.active and not r.held]

    def _words(self) -> int:
        return sum(len(t.split()) for t in self._finals) + len(self._partial.split())

    def _check_interruption(self, now: float) -> None:
        """User speech during a reply: interrupt once it is long enough (and has the words)."""
        start = self.voice.speech_start_ms
        if start is None or start == self._resumed_speech:
            return
        targets = self._targets()
        if not targets:
            return
        began = max(start, min(r.started_ms for r in targets))
        if now - began < self.settings.min_interruption_ms:
            return
        if self._words() < self.settings.min_interruption_words:
            return
        hold = self.settings.resume_false_interruptions and self._words() == 0
        self._interrupt(now, hold=hold)

    def _on_words(self) -> None:
        words = self._words()
        if self._held and words >= max(1, self.settings.min_interruption_words):
            self._confirm()
        elif words and self.settings.min_interruption_words and self.voice.in_speech:
            self._check_interruption(self.session.clock.now_ms())

    def _interrupt(self, at_ms: float, *, hold: bool) -> None:
        session = self.session
        targets = self._targets()
        if not targets:
            return
        for reply in targets:
            if hold:
                reply.pause(at_ms)
            else:
                reply.interrupt(at_ms)
        session.set_state(AgentState.INTERRUPTED)
        session.emit_interruption(targets[0], at_ms, held=hold)
        if hold:
            self._held = targets
            at = at_ms + self.settings.resume_timeout_ms
            self._resume_timer = session.clock.call_at(at, self._resume)
        else:
            session.set_state(AgentState.LISTENING)

    def _confirm(self) -> None:
        """The user's words confirm the interruption: cancel the held replies."""
        held, self._held = self._held, []
        self._cancel(self._resume_timer)
        for reply in held:
            reply.interrupt()
        self.session.set_state(AgentState.LISTENING)

    def _resume(self) -> None:
        """No words came: the replies carry on from where they stopped."""
        held, self._held = self._held, []
        self._cancel(self._resume_timer)
        self._resumed_speech = self.voice.speech_start_ms
        for reply in held:
            reply.resume()
        self.session.refresh_state()

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
