"""Audio placed on the session clock: one track per voice, and a stereo call recorder.

Both the recorder and the WAV sink stream to disk as the call goes: a track holds only the
last few seconds of the timeline (``WINDOW_MS``), where frames still arrive and a barge-in
still cuts, and the audio older than that is written to the file as it leaves the window.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from voxpipe.audio import AudioFrame, Int16Array
from voxpipe.errors import AudioFormatError, UsageError

log = logging.getLogger(__name__)

#: How far back from the newest frame (ms) the timeline is held in memory. Frames arrive in
#: time order per track (the user's at their end, the agent's at their start) and a barge-in
#: cuts at most the frame playing, so audio a frame old is still open; the rest of the window
#: absorbs long input frames, network jitter and event-loop stalls of a few seconds. A frame
#: or cut for audio older than this is logged (once) and dropped where it was already written.
WINDOW_MS = 5_000.0
#: Audio written to the file at a time (ms), as it leaves the window.
BLOCK_MS = 1_000.0


class Track:
    """One voice on the session clock: frames placed at their ``start_ms`` (in time order),
    silence in between, summed where they overlap; ``cut`` drops the audio from a moment on.

    Alone, a track holds all its audio (``render``); owned by a recorder or a WAV sink, it
    holds only the audio not yet written (``buffered_samples``)."""

    def __init__(self, sample_rate: int, name: str = "track") -> None:
        self.sample_rate = sample_rate
        self.name = name
        self._pieces: deque[tuple[int, Int16Array]] = deque()
        self._in_order = True  # the pieces held are in the order of their starts
        self._held = 0  # samples held in the pieces
        #: One past the last sample of audio on the track.
        self.end_sample = 0
        #: The latest start of a frame: the track's front on the timeline.
        self.head_sample = 0
        #: Samples before this one were handed on (written); nothing lands there any more.
        self.taken = 0
        self._taken_end = 0  # the latest end of the pieces already handed on and forgotten
        self._writer: TrackFile | None = None
        self._due = math.inf  # the head at which the writer writes what left the window
        self._closed = False

    def add(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        samples = (
            frame.samples
            if frame.sample_rate == self.sample_rate
            else frame.resampled(self.sample_rate).samples
        )
        at = round(frame.start_ms * self.sample_rate / 1000.0)
        if at < self.taken:  # late: its start was written already
            self._late("frame", frame.start_ms)
            skip = self.taken - at
            if skip >= len(samples):
                return
            samples, at = samples[skip:], self.taken
        pieces = self._pieces
        if pieces and at < pieces[-1][0]:
            self._in_order = False
        pieces.append((at, samples))
        self._held += len(samples)
        end = at + len(samples)
        if end > self.end_sample:
            self.end_sample = end
        if at > self.head_sample:
            self.head_sample = at
            if at >= self._due and self._writer is not None:
                self._writer.advance()

    def cut(self, at_ms: float) -> None:
        """Drop the audio from ``at_ms`` on (the output was stopped there)."""
        if self._closed:
            return
        at = round(at_ms * self.sample_rate / 1000.0)
        if at < self.taken:  # late: what was written stays
            written = [self._taken_end, *(s + len(x) for s, x in self._pieces if s < self.taken)]
            if min(max(written), self.taken) > at:
                self._late("cut", at_ms)
            at = self.taken
        pieces = self._pieces
        while pieces and pieces[-1][0] >= at:
            self._held -= len(pieces.pop()[1])
        if pieces:
            start, samples = pieces[-1]
            if start + len(samples) > at:
                pieces[-1] = (start, samples[: at - start])
                self._held -= start + len(samples) - at
        else:
            self._in_order = True
        self.end_sample = max([self._taken_end, *(s + len(x) for s, x in pieces)])

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory (the frames not yet written, counted whole)."""
        return self._held

    def render(self, length: int | None = None) -> Int16Array:
        """The audio held, from ``taken`` to ``length`` (default: its end), as one array."""
        return self._mix(self.taken, self.end_sample if length is None else length)

    def take(self, until: int) -> Int16Array:
        """The audio from ``taken`` to ``until``, handed on: it is forgotten, and frames or
        cuts that reach back before ``until`` are late from now on."""
        out = self._mix(self.taken, until)
        self.taken = max(self.taken, until)
        pieces = self._pieces
        # Only from the front, so a cut finds the same last piece as if nothing was taken.
        while pieces and pieces[0][0] + len(pieces[0][1]) <= self.taken:
            start, samples = pieces.popleft()
            self._held -= len(samples)
            self._taken_end = max(self._taken_end, start + len(samples))
        if not pieces:
            self._in_order = True
        return out

    def _mix(self, start: int, stop: int) -> Int16Array:
        out = np.zeros(max(stop - start, 0), dtype=np.int32)
        in_order = self._in_order
        for at, samples in self._pieces:
            if at >= stop and in_order:
                break  # and so do all after it
            lo, hi = max(at, start), min(at + len(samples), stop)
            if lo < hi:
                out[lo - start : hi - start] += samples[lo - at : hi - at]
        return np.clip(out, -32768, 32767).astype(np.int16)

    def _late(self, what: str, at_ms: float) -> None:
        if self._writer is not None:
            self._writer.late(self, what, at_ms)


class TrackFile:
    """An audio file (16-bit PCM) written from tracks, one per channel, as their audio leaves
    the window; opened at once, so a bad path fails before the call starts."""

    def __init__(
        self, path: Path, tracks: Sequence[Track], what: str, window_ms: float = WINDOW_MS
    ) -> None:
        if not window_ms > 0 or not math.isfinite(window_ms):
            raise ValueError(f"window_ms must be a positive number of ms, got {window_ms!r}")
        self.path, self.tracks, self.what = path, tuple(tracks), what
        rate = self.tracks[0].sample_rate
        self.window = max(round(window_ms * rate / 1000.0), 1)
        self.block = max(round(BLOCK_MS * rate / 1000.0), 1)
        #: Frames and cuts that came for audio already written (their part there is dropped).
        self.late_count = 0
        self._file = _open_for_writing(path, rate, len(self.tracks))
        for track in self.tracks:
            track._writer = self
        self._set_due()

    @property
    def closed(self) -> bool:
        return bool(self._file.closed)

    @property
    def buffered_samples(self) -> int:
        return sum(track.buffered_samples for track in self.tracks)

    def advance(self) -> None:
        """A track moved on: write what is now older than the window."""
        head = max(track.head_sample for track in self.tracks)
        self._write_until(head - self.window)
        self._set_due()

    def late(self, track: Track, what: str, at_ms: float) -> None:
        self.late_count += 1
        if self.late_count > 1:
            return
        written_ms = track.taken * 1000.0 / track.sample_rate
        log.warning(
            "%s %s: late %s %s at %.0f ms, after the audio up to %.0f ms was written: its "
            "part before that is dropped (the window is %.0f ms; later late audio is dropped "
            "without a warning, counted in late_count)",
            self.what,
            self.path,
            track.name,
            what,
            at_ms,
            written_ms,
            self.window * 1000.0 / track.sample_rate,
        )

    def close(self) -> None:
        """Write the rest and the header; the file is valid even if writing fails."""
        if self.closed:
            return
        try:
            length = max(track.end_sample for track in self.tracks)
            taken = self.tracks[0].taken
            if length >= taken:
                self._write_until(length)
            else:  # the silence written last was cut off the end after all
                self._file.truncate(length)
        finally:
            self._file.close()
            for track in self.tracks:
                track._closed, track._due = True, math.inf
                track._pieces.clear()
                track._held = 0

    def _write_until(self, until: int) -> None:
        """Write every track up to sample ``until``, a block at a time (a long silence
        costs no more memory than a block)."""
        taken = self.tracks[0].taken
        while taken < until:
            stop = min(taken + self.block, until)
            channels = [track.take(stop) for track in self.tracks]
            self._file.write(channels[0] if len(channels) == 1 else np.stack(channels, axis=1))
            taken = stop

    def _set_due(self) -> None:
        due = self.tracks[0].taken + self.window + self.block
        for track in self.tracks:
            track._due = due


def _open_for_writing(path: Path, sample_rate: int, channels: int) -> Any:
    """``path`` opened for writing 16-bit PCM (the format its suffix names, WAV for .wav),
    with the header kept up to date as audio is written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be written: its folder {path.parent} cannot be created "
            f"({exc.strerror})."
        ) from None
    try:
        file = soundfile.SoundFile(
            str(path), "w", samplerate=sample_rate, channels=channels, subtype="PCM_16"
        )
    except (TypeError, ValueError) as exc:
        raise AudioFormatError(
            f"{path}: cannot be written as 16-bit PCM audio ({exc}); give a .wav path."
        ) from None
    except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise UsageError(f"{path}: cannot be written ({_why_not(path, exc)}).") from None
    _update_header_as_written(file)
    return file


def _why_not(path: Path, error: Exception) -> str:
    """Why ``path`` could not be opened for writing, in words (libsndfile says "System
    error")."""
    if path.is_dir():
        return "it is a directory"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    return str(getattr(error, "error_string", None) or error).rstrip(".")


#: libsndfile's SFC_SET_UPDATE_HEADER_AUTO: rewrite the header after every write.
_SFC_SET_UPDATE_HEADER_AUTO = 0x1061


def _update_header_as_written(file: Any) -> None:
    """Keep the file's header in step with the audio written (a block a second), so what is
    on disk is a readable file even if the process dies before ``close``. Best effort: it
    uses soundfile's libsndfile handle; without it the header is written on close."""
    lib, ffi = getattr(soundfile, "_snd", None), getattr(soundfile, "_ffi", None)
    handle = getattr(file, "_file", None)
    if lib is not None and ffi is not None and handle is not None:
        lib.sf_command(handle, _SFC_SET_UPDATE_HEADER_AUTO, ffi.NULL, 1)


class Recording:
    """What a file written as the call goes reports: memory held, late audio, closed."""

    _out: TrackFile

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory, all tracks together."""
        return self._out.buffered_samples

    @property
    def late_count(self) -> int:
        """Frames and cuts that came for audio already written (that part is dropped)."""
        return self._out.late_count

    @property
    def closed(self) -> bool:
        return self._out.closed


class CallRecorder(Recording):
    """A stereo WAV of the call: the user on the left channel, the agent on the right,
    both placed on the session clock, so the gap between them is what a listener hears.

    The file is opened here and written as the call goes (only ``window_ms`` of it is held
    in memory); ``close`` writes the rest and the header, and may be called again."""

    def __init__(
        self, path: str | Path, sample_rate: int = 16_000, *, window_ms: float = WINDOW_MS
    ) -> None:
        self.path = Path(path)
        self.user = Track(sample_rate, "user")
        self.agent = Track(sample_rate, "agent")
        self._out = TrackFile(self.path, (self.user, self.agent), "call recorder", window_ms)

    def close(self) -> Path:
        """Write the rest of the call and the header; return the file's path."""
        self._out.close()
        return self.path
