"""SimASR: energy endpointing on the frames it is given, partials while speech flows, then a
final transcript ``finalization_ms`` after the detected end of speech."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Transcript
from voxpipe.sim.voice import WORDS_PER_MINUTE
from voxpipe.streams import Emit, pumped
from voxpipe.vad import DEFAULT_THRESHOLD_DB, EnergyVAD, Utterance


class SimASROptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_ms: float = Field(200, ge=20, description="silence that ends an utterance")
    finalization_ms: float = Field(100, ge=0, description="final delay after the endpoint")
    first_partial_ms: float = Field(60, ge=0, description="speech heard before the first partial")
    partial_interval_ms: float = Field(250, gt=0, description="speech between later partials")
    threshold_db: float = Field(DEFAULT_THRESHOLD_DB, le=0, description="speech threshold, dBFS")
    confidence: float = Field(0.95, ge=0, le=1)


class SimASR:
    """Hears the audio for real (energy), "recognises" the script of simulated speech."""

    def __init__(
        self, options: SimASROptions | None = None, context: BackendContext | None = None
    ) -> None:
        self.options = options or SimASROptions()

    def transcribe(self, audio: AsyncIterator[AudioFrame]) -> AsyncIterator[Transcript]:
        return pumped(lambda emit: self._listen(audio, emit))

    async def _listen(self, audio: AsyncIterator[AudioFrame], emit: Emit[Transcript]) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        vad = EnergyVAD(opts.threshold_db, opts.endpoint_ms)
        scripts: list[str] = []
        next_partial_ms = opts.first_partial_ms
        last_final_at = loop.time()
        last_frame: AudioFrame | None = None
        last_partial = ""
        # Loop time of session time 0. Frames arrive once captured, at their end time or a
        # little later; the earliest arrival gives the truest mapping.
        origin = math.inf
        async for frame in audio:
            last_frame = frame
            origin = min(origin, loop.time() - frame.end_ms / 1000.0)
            voiced = vad.is_voiced(frame)
            if voiced and not vad.in_speech:
                scripts, next_partial_ms, last_partial = [], opts.first_partial_ms, ""
            if voiced and frame.script and (not scripts or scripts[-1] != frame.script):
                scripts.append(frame.script)
            utterance = vad.update(frame)
            if voiced and vad.speech_start_ms is not None:
                heard = frame.end_ms - vad.speech_start_ms
                if heard >= next_partial_ms:
                    next_partial_ms = heard + opts.partial_interval_ms
                    text = self._text(scripts, heard)
                    if text != last_partial:
                        last_partial = text
                        emit(Transcript(text, False, opts.confidence))
            if utterance is not None:
                last_final_at = self._finalize(utterance, scripts, origin, emit, loop)
        if last_frame is not None and (utterance := vad.end(last_frame.end_ms)) is not None:
            last_final_at = self._finalize(utterance, scripts, origin, emit, loop)
        await asyncio.sleep(max(last_final_at - loop.time(), 0))  # the last final is out

    def _finalize(
        self,
        utterance: Utterance,
        scripts: list[str],
        origin: float,
        emit: Emit[Transcript],
        loop: asyncio.AbstractEventLoop,
    ) -> float:
        """Schedule the final ``finalization_ms`` after the endpoint; returns its loop time."""
        at = origin + (utterance.detected_ms + self.options.finalization_ms) / 1000.0
        loop.call_at(at, emit, self._final(utterance, list(scripts)))
        return at

    def _final(self, utterance: Utterance, words: list[str]) -> Transcript:
        heard = utterance.end_ms - utterance.start_ms
        return Transcript(
            self._text(words, heard, final=True),
            True,
            self.options.confidence,
            endpoint_ms=utterance.detected_ms,
        )

    @staticmethod
    def _text(scripts: list[str], heard_ms: float, final: bool = False) -> str:
        if not scripts:
            return f"[speech {heard_ms / 1000:.1f} s]"
        text = " ".join(scripts).split()
        if final:
            return " ".join(text)
        spoken = math.ceil(heard_ms * WORDS_PER_MINUTE / 60_000)
        return " ".join(text[: max(1, spoken)])

    async def aclose(self) -> None:
        return None
