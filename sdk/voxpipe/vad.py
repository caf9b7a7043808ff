"""Voice activity: the energy VAD (the default ``[vad]`` backend) and the utterance it bounds.

A VAD only says whether each frame is voiced; where speech starts and ends (a minimum
length, the silence that ends it) is the session's turn-taking (``voxpipe.turns``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from voxpipe.audio import AudioFrame

DEFAULT_THRESHOLD_DB = -40.0


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech on the session clock: first voiced audio to last voiced audio."""

    start_ms: float
    end_ms: float
    #: When the endpointer decided the speech was over (``end_ms`` + the silence it waited).
    detected_ms: float


class EnergyVADOptions(BaseModel):
    """``[vad]`` options when ``backend = "energy"``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold_db: float = Field(
        DEFAULT_THRESHOLD_DB, ge=-120, le=0, description="frame energy (dBFS) counted as speech"
    )


class EnergyVAD:
    """Voiced = frame energy at or above ``threshold_db`` dBFS (cached on the frame)."""

    __slots__ = ("threshold_db",)

    def __init__(self, threshold_db: float = DEFAULT_THRESHOLD_DB) -> None:
        self.threshold_db = threshold_db

    @classmethod
    def from_options(cls, options: EnergyVADOptions, context: object = None) -> EnergyVAD:
        return cls(options.threshold_db)

    def is_voiced(self, frame: AudioFrame) -> bool:
        return frame.energy_db >= self.threshold_db
