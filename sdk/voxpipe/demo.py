"""The demo's scenarios: what the simulated user says, and the offline agent of ``--local``.

``voxpipe demo`` runs on the built-in simulated backends. ``voxpipe demo --local`` runs on
voxpipe-local's real engines (pocketsphinx hears, the rules LLM answers, espeak-ng speaks,
webrtcvad cuts the turns), with espeak-ng, in another pitch, as the user's voice; the core
only names those backends (the plugin is a separate, GPL-3 distribution).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from voxpipe.budgets import DEMO_BUDGETS
from voxpipe.config import AgentConfig, parse_config
from voxpipe.errors import BackendNotFound, UsageError
from voxpipe.io.simspeech import Line, Said
from voxpipe.metrics import TurnMetrics

DEMO_LINES = ("Hello, how are you today?", "What's the weather like?", "Can you tell me the time?")
#: ``voxpipe demo --barge-in``: the user talks over the second answer, 1.5 s into it.
BARGE_IN_LINES = (
    Line("What's the weather like?"),
    Line("Wait, stop. What time is it?", after="answer_start", delay_ms=1500),
    Line("Thanks, that's all."),
)

#: The user's voice in ``--local``: espeak-ng, lower and slower than the agent's.
LOCAL_VOICE = {"backend": "espeak", "pitch": 30, "rate": 160}
#: ``--local``'s budget on the first partial transcript, ms after the speech starts.
LOCAL_FIRST_PARTIAL_MS = 500


def words(text: str) -> str:
    """``text`` as an ASR writes it: lower case, no punctuation but apostrophes."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def demo_config(*, local: bool, lines: tuple[str | Line, ...]) -> AgentConfig:
    """The demo agent: the sim backends, or the local ones with the lines as vocabulary."""
    data: dict[str, Any] = {"budgets": DEMO_BUDGETS.model_dump(exclude_none=True)}
    if local:
        phrases = [words(line if isinstance(line, str) else line.text) for line in lines]
        # pocketsphinx's grammar search has a first partial only once the first word has
        # ended: 160-380 ms into the demo's lines.
        data["budgets"]["asr_processing"] = LOCAL_FIRST_PARTIAL_MS
        data |= {
            "asr": {"backend": "pocketsphinx", "vocabulary": [p for p in phrases if p]},
            "llm": {"backend": "rules", "word_delay_ms": 15},
            "tts": {"backend": "espeak"},
            "vad": {"backend": "webrtcvad"},
        }
    return _local_parse(data, "demo --local") if local else parse_config(data, "demo")


def local_voice(config: AgentConfig) -> Any:
    """The TTS that says the user's lines in ``--local``, at the agent's rate and frames."""
    voice = _local_parse({"agent": config.agent.model_dump(), "tts": LOCAL_VOICE}, "voice")
    return voice.build("tts")


def _local_parse(data: dict[str, Any], source: str) -> AgentConfig:
    try:
        return parse_config(data, source)
    except BackendNotFound as exc:
        raise UsageError(
            f"voxpipe demo --local runs on the voxpipe-local plugin, which is not installed "
            f"here: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class Heard:
    """One line the user said, and what the ASR heard of it (None: no turn answered it)."""

    said: str
    heard: str | None

    @property
    def exact(self) -> bool:
        return self.heard is not None and words(self.said) == words(self.heard)


def said_and_heard(said: list[Said], turns: list[TurnMetrics]) -> list[Heard]:
    """Each line said, beside the transcript of the turn whose speech overlaps it."""
    out = []
    for line in said:
        overlapping = [
            turn.user_text
            for turn in turns
            if turn.stamps.get("speech_start", float("inf")) < line.end_ms
            and turn.stamps.get("speech_end", float("-inf")) > line.start_ms
        ]
        out.append(Heard(line.text, " ".join(overlapping) if overlapping else None))
    return out
