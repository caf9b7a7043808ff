"""What every voxpipe figure shares: colours, type sizes, and measuring text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from voxpipe.metrics import STAGES
from voxpipe.report import clip

if TYPE_CHECKING:
    pass


#: Bar colours of the stages and of the whole-turn panel. Green and red-orange are kept for
#: budget verdicts.
SEGMENT_COLOURS: dict[str, str] = {
    "user speech": "#c6dbef",
    "asr_finalization": "#1f77b4",
    "handoff": "#8c564b",
    "llm_ttft": "#ff7f0e",
    "first_phrase": "#e377c2",
    "tts_ttfb": "#9467bd",
    "playout": "#17becf",
    "agent speaking": "#d9d9d9",
}
#: Budget verdicts (Okabe-Ito bluish green and vermillion: apart for colour-blind eyes too).
OK_COLOUR, MISS_COLOUR, UNDECIDED_COLOUR = "#009e73", "#d55e00", "#8c8c8c"
_VERDICT_COLOURS = {True: OK_COLOUR, False: MISS_COLOUR, None: UNDECIDED_COLOUR}
#: How each turn ended, in the summary and the turn headers (Okabe-Ito).
OUTCOME_COLOURS: dict[str, str] = {
    "ok": "#56b4e9",
    "interrupted": "#e69f00",
    "failed": "#404040",
    "cancelled": "#cc79a7",
}
_BARGE_IN_COLOUR = "#000000"
_WINDOW_COLOUR = "#fff3c4"
_PERCENTILE_COLOUR = "#0072b2"
_DARK_STAGES = frozenset(STAGES) - {"first_phrase", "playout"}

_DPI = 100
_FIG_W = 16.0  # inches, every figure
_FONT = 8.0
_SMALL = 7.5

# Numbers and text.


def _ms(value: float) -> str:
    """Milliseconds as people read them: whole, but 1.5 stays 1.5."""
    return f"{value:.1f}" if abs(value) < 10 and value != round(value) else f"{value:.0f}"


@functools.lru_cache(maxsize=4096)
def _text_w(text: str, size: float = _FONT, bold: bool = False) -> float:
    """Width in inches of ``text`` (its widest line) as drawn at ``size`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    widths = [TextPath((0, 0), line, prop=prop).get_extents().width for line in text.split("\n")]
    return max(widths, default=0.0) / 72.0


def _fit(text: str, width_in: float, size: float = _FONT) -> str:
    """``text`` on one line, clipped with "..." to at most ``width_in`` inches."""
    text = " ".join(text.split())
    if _text_w(text, size) <= width_in:
        return text
    lo, hi = 4, len(text)  # the longest clip that fits is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _text_w(clip(text, mid), size) <= width_in else (lo, mid - 1)
    return clip(text, lo)


def _spread(
    starts: Sequence[float], widths: Sequence[float], lo: float, hi: float, gap: float
) -> list[float]:
    """Left edges for boxes that want to start at ``starts`` (ascending), moved as little as
    a left then right pass can so that none overlap (``gap`` apart) and all lie in
    [lo, hi]; boxes that cannot all fit are packed from ``lo`` and run past ``hi``."""
    if sum(widths) + gap * (len(widths) - 1) > hi - lo:
        starts, hi = [lo] * len(widths), float("inf")
    lefts: list[float] = []
    edge = lo
    for start, width in zip(starts, widths, strict=True):
        lefts.append(max(start, edge))
        edge = lefts[-1] + width + gap
    right = hi
    for i in reversed(range(len(lefts))):
        lefts[i] = min(lefts[i], right - widths[i])
        right = lefts[i] - gap
    return lefts
