"""Energy-based voice activity: where speech starts and, after enough silence, where it ended."""

from __future__ import annotations

from dataclasses import dataclass

from voxpipe.audio import AudioFrame

DEFAULT_THRESHOLD_DB = -40.0
#: Voiced audio shorter than this is a click, not speech.
DEFAULT_MIN_SPEECH_MS = 60.0


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech on the session clock: first voiced audio to last voiced audio."""

    start_ms: float
    end_ms: float
    #: When the endpointer decided the speech was over (``end_ms`` + the silence it waited).
    detected_ms: float


class EnergyVAD:
    """Voiced = frame energy at or above ``threshold_db`` dBFS.

    Speech starts once ``min_speech_ms`` of consecutive voiced audio has been heard (a click
    or a knock is not speech), and is dated back to the first of those frames. ``update``
    tracks the current utterance; once ``endpoint_ms`` of silence follows the last voiced
    frame it returns the finished ``Utterance`` (``speech_end`` is the end of the last voiced
    frame, never the moment the silence was noticed).
    """

    __slots__ = (
        "_run_start_ms",
        "endpoint_ms",
        "last_voiced_end_ms",
        "min_speech_ms",
        "speech_start_ms",
        "threshold_db",
    )

    def __init__(
        self,
        threshold_db: float = DEFAULT_THRESHOLD_DB,
        endpoint_ms: float = 300.0,
        min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
    ) -> None:
        self.threshold_db = threshold_db
        self.endpoint_ms = endpoint_ms
        self.min_speech_ms = min_speech_ms
        self.speech_start_ms: float | None = None
        self.last_voiced_end_ms: float | None = None
        self._run_start_ms: float | None = None  # voiced frames not yet long enough for speech

    @property
    def in_speech(self) -> bool:
        return self.speech_start_ms is not None

    def is_voiced(self, frame: AudioFrame) -> bool:
        return frame.energy_db >= self.threshold_db

    def update(self, frame: AudioFrame) -> Utterance | None:
        """Feed one frame; returns the utterance that this frame's silence ended, if any."""
        if frame.energy_db >= self.threshold_db:
            if self.speech_start_ms is None:
                if self._run_start_ms is None:
                    self._run_start_ms = frame.start_ms
                if frame.end_ms - self._run_start_ms < self.min_speech_ms:
                    return None
                self.speech_start_ms, self._run_start_ms = self._run_start_ms, None
            self.last_voiced_end_ms = frame.end_ms
            return None
        self._run_start_ms = None
        if self.speech_start_ms is not None and self.last_voiced_end_ms is not None:
            silence = frame.end_ms - self.last_voiced_end_ms
            if silence >= self.endpoint_ms:
                return self.end(self.last_voiced_end_ms + self.endpoint_ms)
        return None

    def end(self, detected_ms: float) -> Utterance | None:
        """Close the current utterance now (end of stream); ``None`` if there is none."""
        if self.speech_start_ms is None or self.last_voiced_end_ms is None:
            return None
        utterance = Utterance(self.speech_start_ms, self.last_voiced_end_ms, detected_ms)
        self.speech_start_ms = None
        return utterance
