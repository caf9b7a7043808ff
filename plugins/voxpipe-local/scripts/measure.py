"""Print what voxpipe-local's backends cost on this machine: espeak's start-up and its time
to first audio, the webrtcvad VAD's time per frame, and pocketsphinx's start-up, memory per
decoder, real-time factor and word error rate on espeak-ng's speech, with and without a
vocabulary. Run: python scripts/measure.py (pocketsphinx's memory: Linux only)"""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import aclosing
from pathlib import Path

import numpy as np

from voxpipe.audio import Int16Array, iter_frames
from voxpipe.hookspecs import BackendContext
from voxpipe.sim.voice import speech_like
from voxpipe_local.espeak import EspeakOptions, EspeakTTS
from voxpipe_local.sphinx import final_text, partial_text
from voxpipe_local.sphinx_model import PocketsphinxOptions, SphinxModel
from voxpipe_local.webrtc import WebRTCVAD, WebRTCVADOptions

PHRASE = "Hello there. How can I help you today?"
SAID = ["what's the weather like", "can you tell me the time", "hello how are you today"]
VOCABULARY = [*SAID, "good morning", "what time is it", "thank you goodbye"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def espeak_figures(sample_rate: int, runs: int = 20) -> None:
    tts = EspeakTTS(EspeakOptions(), BackendContext(sample_rate, 20))
    first, whole = [], []
    for _ in range(runs):
        start = time.perf_counter()
        async with aclosing(tts.synthesize(PHRASE)) as stream:
            frames = [await anext(stream)]
            first.append(time.perf_counter() - start)
            frames += [frame async for frame in stream]
        whole.append(time.perf_counter() - start)
    audio_s = len(frames) * 0.02
    print(
        f"espeak @ {sample_rate} Hz: first audio {ms(statistics.median(first))} median, "
        f"{ms(max(first))} max; whole phrase ({audio_s:.2f} s of audio) "
        f"{ms(statistics.median(whole))} median: {audio_s / statistics.median(whole):.0f}x "
        "real time"
    )


def vad_figures(sample_rate: int, frame_ms: int = 20) -> None:
    rng = np.random.default_rng(0)
    audio = speech_like(5_000, sample_rate) + rng.normal(0, 300, sample_rate * 5).astype(np.int16)
    frames = list(iter_frames(audio, sample_rate, frame_ms))
    vad = WebRTCVAD(WebRTCVADOptions(), BackendContext(sample_rate, frame_ms))
    start = time.perf_counter()
    for frame in frames:
        vad.is_voiced(frame)
    per_frame = (time.perf_counter() - start) / len(frames)
    print(f"webrtcvad @ {sample_rate} Hz, {frame_ms} ms frames: {per_frame * 1e6:.1f} µs a frame")


def rss_mb() -> float:
    """This process's resident memory (C allocations included), MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 1e6


def wer(reference: str, hypothesis: str) -> float:
    """Word edits per reference word."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, heard in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != heard))
    return row[-1] / len(ref)


async def espeak_speech(text: str) -> Int16Array:
    tts = EspeakTTS(EspeakOptions(), BackendContext(16_000, 20))
    return np.concatenate([frame.samples async for frame in tts.synthesize(text)])


def sphinx_figures(vocabulary: list[str], speech: list[Int16Array]) -> None:
    start = time.perf_counter()
    model = SphinxModel(PocketsphinxOptions(vocabulary=vocabulary))
    checked = time.perf_counter() - start
    before = rss_mb()
    start = time.perf_counter()
    decoder = model.decoder()
    built = time.perf_counter() - start
    memory = rss_mb() - before
    heard, busy, finals = [], 0.0, []
    for audio in speech:
        start = time.perf_counter()
        decoder.start_utt()
        for at in range(0, len(audio), 320):  # 20 ms frames, a hypothesis after each
            partial_text(decoder, audio[at : at + 320].tobytes())
        end = time.perf_counter()
        heard.append(final_text(decoder))
        finals.append(time.perf_counter() - end)
        busy += time.perf_counter() - start
    audio_s = sum(len(audio) for audio in speech) / 16_000
    error = wer(" ".join(SAID), " ".join(heard))
    what = f"vocabulary of {len(vocabulary)} phrases" if vocabulary else "general language model"
    print(
        f"pocketsphinx, {what}: start-up {ms(checked)} (backend) + {ms(built)} (decoder), "
        f"{memory:.0f} MB a decoder; {audio_s / busy:.0f}x real time (RTF {busy / audio_s:.3f}), "
        f"final {ms(max(finals))} max after the audio; WER {error:.2f}: {heard}"
    )


def main() -> None:
    start = time.perf_counter()
    EspeakTTS(EspeakOptions())  # loads and starts libespeak-ng, checks the voice
    startup = time.perf_counter() - start
    print(f"espeak start-up (load the library, its data, the voice): {ms(startup)}")
    for rate in (16_000, 24_000):
        asyncio.run(espeak_figures(rate))
    for rate in (16_000, 48_000, 24_000, 44_100):
        vad_figures(rate)
    speech = [asyncio.run(espeak_speech(text)) for text in SAID]
    sphinx_figures(VOCABULARY, speech)
    sphinx_figures([], speech)


if __name__ == "__main__":
    main()
