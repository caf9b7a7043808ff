"""Audio frames (int16 mono PCM on the session clock), conversions, resampling and WAV I/O."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from voxpipe.errors import AudioFormatError

Int16Array = npt.NDArray[np.int16]

#: Energy of an all-zero frame, in dBFS (log of zero is clipped here).
SILENCE_DB = -120.0


@dataclass(frozen=True, slots=True, eq=False)
class AudioFrame:
    """A run of int16 mono PCM samples starting at ``start_ms`` on the session clock.

    ``script`` carries the words spoken in this frame when they are known (simulated speech),
    so a simulated ASR can "recognise" them; real audio leaves it ``None``.
    Frames compare by identity (their samples are arrays).
    """

    samples: Int16Array
    sample_rate: int
    start_ms: float = 0.0
    script: str | None = None
    _energy_db: float | None = field(default=None, repr=False)

    @property
    def duration_ms(self) -> float:
        return len(self.samples) * 1000.0 / self.sample_rate

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    @property
    def energy_db(self) -> float:
        """RMS level in dBFS (0 = full scale), computed once per frame."""
        if self._energy_db is None:
            x = self.samples.astype(np.float32)
            rms = math.sqrt(float(np.dot(x, x)) / max(len(x), 1)) / 32768.0
            energy = 20.0 * math.log10(rms) if rms > 1e-6 else SILENCE_DB
            object.__setattr__(self, "_energy_db", energy)  # a cache, not a change
            return energy
        return self._energy_db

    def at(self, start_ms: float) -> AudioFrame:
        """The same samples placed at ``start_ms``."""
        return AudioFrame(self.samples, self.sample_rate, start_ms, self.script, self._energy_db)

    def resampled(self, sample_rate: int) -> AudioFrame:
        """The same audio at another sample rate."""
        if sample_rate == self.sample_rate:
            return self
        return AudioFrame(
            resample(self.samples, self.sample_rate, sample_rate),
            sample_rate,
            self.start_ms,
            self.script,
        )

    @classmethod
    def from_float(
        cls, samples: npt.ArrayLike, sample_rate: int, start_ms: float = 0.0
    ) -> AudioFrame:
        """A frame from float samples in [-1, 1] (mono, or stereo as (n, channels))."""
        return cls(float_to_int16(to_mono(np.asarray(samples))), sample_rate, start_ms)


def float_to_int16(samples: npt.ArrayLike, *, source: str = "audio") -> Int16Array:
    """Float samples in [-1, 1] to int16, clipping; NaN or inf raise ``AudioFormatError``."""
    x = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioFormatError(
            f"{source}: {bad} sample(s) are NaN or infinite; float audio must be finite values "
            "in [-1, 1]. Check the code or file that produced it."
        )
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_mono(samples: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """Average the channels of (n, channels) audio; 1-D audio is returned unchanged."""
    if samples.ndim == 1:
        return samples
    if samples.ndim == 2:
        if samples.shape[1] == 1:
            return samples[:, 0]
        mixed: npt.NDArray[np.generic] = samples.astype(np.float64).mean(axis=1)
        return mixed.astype(samples.dtype) if samples.dtype.kind == "i" else mixed
    raise AudioFormatError(f"audio must be 1-D or (samples, channels), got shape {samples.shape}")


def resample(samples: Int16Array, from_rate: int, to_rate: int) -> Int16Array:
    """Resample int16 mono audio with soxr (high quality, streaming-safe for whole buffers)."""
    if from_rate == to_rate or len(samples) == 0:
        return samples
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16)


class StreamResampler:
    """Resample a stream chunk by chunk without clicks at chunk edges (for provider audio)."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate, self.to_rate = from_rate, to_rate
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")
        )

    def push(self, samples: Int16Array, *, last: bool = False) -> Int16Array:
        if self._stream is None:
            return samples
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype=np.int16)


class Framer:
    """Cuts a stream of sample chunks of any size into frames of ``frame_ms`` (for provider
    audio); ``flush`` returns the rest zero-padded to a whole frame."""

    def __init__(self, sample_rate: int, frame_ms: int) -> None:
        self.sample_rate, self.frame_ms = sample_rate, frame_ms
        self.size = sample_rate * frame_ms // 1000
        self._buffer: Int16Array = np.zeros(0, dtype=np.int16)
        self._count = 0

    def push(self, samples: Int16Array) -> Iterator[AudioFrame]:
        for chunk in self.cut(samples):
            yield self._frame(chunk)

    def flush(self) -> Iterator[AudioFrame]:
        rest = self.rest()
        if rest is not None:
            yield self._frame(rest)

    def cut(self, samples: Int16Array) -> list[Int16Array]:
        """The samples of the whole frames ``samples`` completes (unstamped ``push``)."""
        buffer = np.concatenate((self._buffer, samples)) if len(self._buffer) else samples
        size = self.size
        full = len(buffer) // size
        self._buffer = buffer[full * size :]
        return [buffer[i * size : (i + 1) * size].copy() for i in range(full)]

    def rest(self) -> Int16Array | None:
        """What is left, zero-padded to a whole frame (unstamped ``flush``)."""
        if not len(self._buffer):
            return None
        padded = np.zeros(self.size, dtype=np.int16)
        padded[: len(self._buffer)] = self._buffer
        self._buffer = np.zeros(0, dtype=np.int16)
        return padded

    def _frame(self, samples: Int16Array) -> AudioFrame:
        frame = AudioFrame(samples, self.sample_rate, float(self._count * self.frame_ms))
        self._count += 1
        return frame


def iter_frames(
    samples: Int16Array,
    sample_rate: int,
    frame_ms: float,
    start_ms: float = 0.0,
    script: str | None = None,
) -> Iterator[AudioFrame]:
    """Frames of ``frame_ms`` cut from mono audio as it is read: views into ``samples``, only
    the last, partial frame copied and zero-padded."""
    n = round(sample_rate * frame_ms / 1000.0)
    if n <= 0:
        raise ValueError(f"frame_ms={frame_ms} is too short at {sample_rate} Hz")
    for i, at in enumerate(range(0, len(samples), n)):
        chunk = samples[at : at + n]
        if len(chunk) < n:
            chunk = np.concatenate((chunk, np.zeros(n - len(chunk), dtype=np.int16)))
        yield AudioFrame(chunk, sample_rate, start_ms + i * frame_ms, script)


def split_frames(
    samples: Int16Array, sample_rate: int, frame_ms: float, start_ms: float = 0.0
) -> list[AudioFrame]:
    """All of ``iter_frames`` at once."""
    return list(iter_frames(samples, sample_rate, frame_ms, start_ms))


#: libsndfile subtypes read as audio samples; anything else (u-law, ADPCM...) is refused.
_PCM_SUBTYPES = frozenset({"PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})


def read_wav(path: str | Path) -> tuple[Int16Array, int]:
    """Read a WAV file (PCM 8/16/24/32-bit or float, incl. WAVE_FORMAT_EXTENSIBLE) as int16
    samples shaped (n, channels), and its sample rate."""
    p = Path(path)
    if p.is_dir():
        raise AudioFormatError(f"{p}: is a directory, not a WAV file.")
    if not p.is_file():
        raise AudioFormatError(f"{p}: no such file.")
    if not os.access(p, os.R_OK):
        raise AudioFormatError(f"{p}: cannot be read (permission denied).")
    try:
        info = soundfile.info(str(p))
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        bits = _wav_bits_per_sample(p)
        if bits is not None and bits not in (8, 16, 24, 32, 64):
            raise AudioFormatError(
                f"{p}: unsupported sample width of {bits} bits; use 8, 16, 24 or 32-bit PCM or "
                f"float (e.g. `sox {p.name} -b 16 out.wav`)."
            ) from None
        reason = getattr(exc, "error_string", str(exc))
        raise AudioFormatError(
            f"{p}: not a readable WAV file ({reason}). voxpipe reads PCM or float WAV; "
            f"convert with e.g. `sox {p.name} -b 16 out.wav`."
        ) from None
    if info.subtype not in _PCM_SUBTYPES:
        raise AudioFormatError(
            f"{p}: unsupported sample format {info.subtype_info!r}; use 8, 16, 24 or 32-bit "
            f"PCM or float (e.g. `sox {p.name} -b 16 out.wav`)."
        )
    if info.frames <= 0:
        raise AudioFormatError(f"{p}: the file holds no audio (0 samples).")
    if info.subtype in ("FLOAT", "DOUBLE"):
        data = soundfile.read(str(p), dtype="float64", always_2d=True)[0]
        return float_to_int16(data, source=str(p)).reshape(-1, info.channels), info.samplerate
    samples = soundfile.read(str(p), dtype="int16", always_2d=True)[0]
    return np.asarray(samples, dtype=np.int16), info.samplerate


def _wav_bits_per_sample(path: Path) -> int | None:
    """Bits per sample from a RIFF/WAVE header's fmt chunk, if the file has one."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], int.from_bytes(head[at + 4 : at + 8], "little")
        if chunk == b"fmt " and at + 24 <= len(head):
            return int.from_bytes(head[at + 22 : at + 24], "little")
        at += 8 + size + size % 2
    return None


def read_speech(path: str | Path, sample_rate: int) -> Int16Array:
    """Read a WAV file as mono int16 at ``sample_rate`` (mixing channels, resampling)."""
    samples, rate = read_wav(path)
    mono = np.asarray(to_mono(samples), dtype=np.int16)
    return resample(mono, rate, sample_rate)


def write_wav(path: str | Path, samples: npt.NDArray[np.int16], sample_rate: int) -> None:
    """Write int16 audio, mono (n,) or multichannel (n, channels), as a 16-bit PCM WAV file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.asarray(samples, dtype=np.int16), sample_rate, subtype="PCM_16")
