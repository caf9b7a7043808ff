"""espeak-ng as a command (``espeak-ng --stdout``): the ``espeak`` TTS's fallback where
espeakng-loader's library is not available.

The command writes a WAV stream whose header carries a fake length (it does not know the
length when it starts): the header is parsed for the format, its sizes are ignored, and the
samples are read until the stream ends. One process per phrase, so phrases need no lock.
"""

from __future__ import annotations

import io
import struct
import subprocess
from collections.abc import Callable
from typing import IO, Protocol, cast

from voxpipe.errors import ProviderError

PROVIDER = "espeak"
_READ_BYTES = 4_096  # ~90 ms of 22.05 kHz audio


class _Options(Protocol):
    voice: str
    rate: int
    pitch: int


class CommandEngine:
    """Synthesis by running ``path`` (an espeak-ng executable) once per phrase."""

    #: espeak-ng's output rate; checked against each stream's header.
    sample_rate = 22_050

    def __init__(self, path: str) -> None:
        self.path = path

    def has_voice(self, voice: str) -> bool:
        done = subprocess.run(
            [self.path, "-q", "-v", voice, "a"], capture_output=True, timeout=30, check=False
        )
        return done.returncode == 0

    def synthesize(self, text: str, options: _Options, sink: Callable[[bytes], bool]) -> None:
        """Speak ``text`` into ``sink`` (PCM16, even chunks) until done or ``sink`` says stop
        (the process is then killed); call off the event loop."""
        args = [self.path, "--stdout", "--stdin", "-v", options.voice]
        args += ["-s", str(options.rate), "-p", str(options.pitch)]
        with subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process:
            assert process.stdin and process.stdout and process.stderr
            try:
                process.stdin.write(text.encode())
                process.stdin.close()
                self._stream(cast(io.BufferedReader, process.stdout), sink)
            except ValueError as exc:
                raise ProviderError(f"{PROVIDER}: {self.path}: {exc}", provider=PROVIDER) from None
            finally:
                if process.poll() is None:
                    process.kill()  # stopped early
                error = process.stderr.read().decode(errors="replace").strip()
            if process.wait() not in (0, -9):
                raise ProviderError(
                    f"{PROVIDER}: {self.path} failed (exit {process.returncode}): {error}",
                    provider=PROVIDER,
                )

    def _stream(self, stdout: io.BufferedReader, sink: Callable[[bytes], bool]) -> None:
        rate = read_wav_header(stdout)
        if rate != self.sample_rate:
            raise ValueError(f"{rate} Hz audio, not {self.sample_rate} Hz")
        odd = b""
        while chunk := stdout.read1(_READ_BYTES):
            data = odd + chunk
            whole = len(data) - len(data) % 2
            odd = data[whole:]
            if whole and not sink(data[:whole]):
                return


def read_wav_header(stream: IO[bytes]) -> int:
    """Read a WAV header up to its ``data`` chunk's samples; the sample rate. The chunk sizes
    of a stream are not trusted (espeak-ng writes 0x7ffff000), only the format."""
    riff = _read(stream, 12)
    if riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
        raise ValueError("not a WAV stream")
    rate = None
    while True:
        name, size = struct.unpack("<4sI", _read(stream, 8))
        if name == b"data":
            break
        body = _read(stream, size + size % 2)
        if name == b"fmt ":
            encoding, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if (encoding, channels, bits) != (1, 1, 16):
                raise ValueError(f"not mono PCM16 (format {encoding}, {channels} ch, {bits} bit)")
    if rate is None:
        raise ValueError("a WAV stream without a fmt chunk")
    return int(rate)


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise ValueError("the WAV stream ended in its header")
    return data
