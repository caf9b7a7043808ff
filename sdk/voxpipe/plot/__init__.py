"""The figures of a session, drawn from the same stamps as the JSON.

- :func:`plot_timeline`: one block per turn. Left, the time to first audio at its own scale
  (0 = speech_end): the stages as a stacked bar, then one row per budget with its window,
  the actual time and its deadline. Right, the whole turn (user speech, thinking, agent
  speaking, barge-in) in seconds, with the transcripts below it.
- :func:`plot_summary`: time to first audio per turn against its budget, p50 / p99 marked,
  coloured by outcome.
- :func:`plot_session`: both, side by side on disk.

Everything is laid out in inches from fixed sizes and measured text, and drawn in a fixed
order, so the same session gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from voxpipe.metrics import SessionMetrics
from voxpipe.plot.style import _DPI, MISS_COLOUR, OK_COLOUR, OUTCOME_COLOURS
from voxpipe.plot.summary import _summary_figure
from voxpipe.plot.timeline import MAX_TIMELINE_TURNS, _timeline_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_TIMELINE_TURNS",
    "MISS_COLOUR",
    "OK_COLOUR",
    "OUTCOME_COLOURS",
    "plot_session",
    "plot_summary",
    "plot_timeline",
    "summary_path",
]


# Writing.


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig``, creating parent directories; no date or version in the file, so the
    same session gives the same bytes."""
    import matplotlib

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        ".png": {"Software": None},
        ".pdf": {"Creator": None, "Producer": None, "CreationDate": None},
        ".svg": {"Creator": None, "Date": None},
    }.get(out.suffix.lower())
    with matplotlib.rc_context({"svg.hashsalt": "voxpipe"}):
        fig.savefig(out, dpi=_DPI, metadata=metadata)
    return out


def plot_timeline(session: SessionMetrics, path: str | Path) -> Path:
    """Write the per-turn timeline to ``path`` (any format matplotlib writes, by suffix).

    Per turn, left: time to first audio in ms from speech_end, the stages stacked and
    labelled, first audio / filler / failure marked, and one row per budget in a fixed
    order (window, actual, deadline tick: green met, vermillion missed, grey undecided;
    rate budgets as text). Right: the whole turn in seconds with the transcripts. At most
    ``MAX_TIMELINE_TURNS`` turns are drawn (a note says which)."""
    return _save(_timeline_figure(session), path)


def plot_summary(session: SessionMetrics, path: str | Path) -> Path:
    """Write the session summary to ``path``: time to first audio per turn against its
    budget, p50 and p99 marked, each turn coloured by its outcome."""
    return _save(_summary_figure(session), path)


def summary_path(path: str | Path) -> Path:
    """Where ``plot_session`` writes the summary beside a timeline at ``path``."""
    out = Path(path)
    return out.with_name(out.stem + "-summary" + out.suffix)


def plot_session(session: SessionMetrics, path: str | Path) -> list[Path]:
    """Write the timeline at ``path`` and the summary beside it (``summary_path``); return
    both paths."""
    return [plot_timeline(session, path), plot_summary(session, summary_path(path))]
