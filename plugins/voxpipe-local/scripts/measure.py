"""Print what voxpipe-local's backends cost on this machine: espeak's start-up and its time
to first audio, the webrtcvad VAD's time per frame, and pocketsphinx's start-up, real-time
factor and word error rate on espeak-ng's speech and on human speech (the LibriVox clips in
tests/data/librivox), with and without a vocabulary, and its memory and start-up a session
for 1 and 10 sessions. Run: python scripts/measure.py (pocketsphinx's memory: Linux only)"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import numpy as np

from voxpipe.audio import AudioFrame, Int16Array, iter_frames, read_wav
from voxpipe.hookspecs import BackendContext
from voxpipe.sim.voice import speech_like
from voxpipe_local.espeak import EspeakOptions, EspeakTTS
from voxpipe_local.sphinx import final_text, partial_text
from voxpipe_local.sphinx_model import Decoder, PocketsphinxOptions, SphinxModel
from voxpipe_local.webrtc import WebRTCVAD, WebRTCVADOptions

PHRASE = "Hello there. How can I help you today?"
SAID = ["what's the weather like", "can you tell me the time", "hello how are you today"]
VOCABULARY = [*SAID, "good morning", "what time is it", "thank you goodbye"]
LIBRIVOX = Path(__file__).parent.parent / "tests" / "data" / "librivox"
#: Phrases that are not in the clips, for a vocabulary that also holds theirs.
DISTRACTORS = (LIBRIVOX.parent / "distractors.txt").read_text().splitlines()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def _first_audio(stream: AsyncIterator[Any]) -> AsyncIterator[AudioFrame]:
    """The stream's items up to its first audio frame: that frame alone."""
    async for item in stream:
        if isinstance(item, AudioFrame):
            yield item
            return


async def espeak_figures(sample_rate: int, runs: int = 20) -> None:
    tts = EspeakTTS(EspeakOptions(), BackendContext(sample_rate, 20))
    first, whole = [], []
    for _ in range(runs):
        start = time.perf_counter()
        async with aclosing(tts.synthesize(PHRASE)) as stream:
            frames = [item async for item in _first_audio(stream)]
            first.append(time.perf_counter() - start)
            frames += [item async for item in stream if isinstance(item, AudioFrame)]
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


def memory_mb() -> tuple[float, float]:
    """This process's resident memory (C allocations included) and the private part of it
    (RssAnon: without the model files mapped from disk, which processes share), MB."""
    status = dict(line.split(":") for line in Path("/proc/self/status").read_text().splitlines())
    private, files = (int(status[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile"))
    return private + files, private


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
    return np.concatenate(
        [f.samples async for f in tts.synthesize(text) if isinstance(f, AudioFrame)]
    )


def sphinx_figures(vocabulary: list[str], speech: list[Int16Array]) -> None:
    start = time.perf_counter()
    model = SphinxModel(PocketsphinxOptions(vocabulary=vocabulary))
    checked = time.perf_counter() - start
    start = time.perf_counter()
    decoder = model.decoder()
    built = time.perf_counter() - start
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
        f"pocketsphinx, {what}: start-up {ms(checked)} (backend) + {ms(built)} (decoder); "
        f"{audio_s / busy:.0f}x real time (RTF {busy / audio_s:.3f}), "
        f"final {ms(max(finals))} max after the audio; WER {error:.2f}: {heard}"
    )


def decode(decoder: Decoder, audio: Int16Array) -> str:
    """One utterance, in 20 ms frames with a hypothesis after each; its final text."""
    decoder.start_utt()
    for at in range(0, len(audio), 320):
        partial_text(decoder, audio[at : at + 320].tobytes())
    return final_text(decoder)


def word_errors(reference: str, hypothesis: str) -> float:
    """Word edits, lower case and without punctuation."""
    hypothesis = re.sub(r"[^\w\s]", "", hypothesis.lower())
    return wer(reference, hypothesis) * len(reference.split())


def human_speech_figures(name: str, options: PocketsphinxOptions) -> None:
    """WER over the LibriVox clips: each in a session of its own (a new decoder, as the
    tests do), and the five in a row in one session (the decoder adapts to the voice)."""
    clips = [read_wav(path)[0] for path in sorted(LIBRIVOX.glob("*.wav"))]
    references = [path.read_text().strip() for path in sorted(LIBRIVOX.glob("*.txt"))]
    words = sum(len(reference.split()) for reference in references)
    audio_s = sum(len(clip) for clip in clips) / 16_000
    model = SphinxModel(options)
    start = time.perf_counter()
    alone = [decode(model.decoder(), clip) for clip in clips]
    alone_s = time.perf_counter() - start
    decoder = model.decoder()
    in_a_row = [decode(decoder, clip) for clip in clips]
    for how, heard, busy in (("a session each", alone, alone_s), ("in one session", in_a_row, 0)):
        errors = sum(map(word_errors, references, heard))
        cost = f", RTF {busy / audio_s:.2f} with the decoders' start-up" if busy else ""
        print(f"pocketsphinx on LibriVox, {name}, {how}: WER {errors / words:.3f}{cost}")
        for text, reference in zip(heard, references, strict=True):
            if text != reference:
                print(f"    heard {text!r}")


def session_costs(vocabulary: list[str], sessions: int) -> list[tuple[float, float, float]]:
    """In a fresh process: each of ``sessions`` decoders' start-up (s), resident and private
    memory (MB)."""
    model = SphinxModel(PocketsphinxOptions(vocabulary=vocabulary))
    decoders, costs = [], []  # every decoder is kept, as the sessions would keep theirs
    for _ in range(sessions):
        (resident, private), start = memory_mb(), time.perf_counter()
        decoders.append(model.decoder())
        built = time.perf_counter() - start
        resident_after, private_after = memory_mb()
        costs.append((built, resident_after - resident, private_after - private))
    return costs


def session_figures(vocabulary: list[str], sessions: int) -> None:
    spawn = multiprocessing.get_context("spawn")  # a process that has loaded nothing yet
    with spawn.Pool(1) as pool:
        costs = pool.apply(session_costs, (vocabulary, sessions))
    what = f"vocabulary of {len(vocabulary)} phrases" if vocabulary else "general language model"
    (built, resident, private), *further = costs
    line = (
        f"pocketsphinx sessions, {what}, {sessions}: the first {ms(built)}, {resident:.1f} MB "
        f"({private:.1f} MB private)"
    )
    if further:
        built, resident, private = (
            statistics.median(column) for column in zip(*further, strict=True)
        )
        total = sum(cost[1] for cost in costs)
        line += (
            f"; each further {ms(built)}, {resident:.1f} MB ({private:.1f} MB private); "
            f"{total:.0f} MB in all, {total / sessions:.1f} MB a session"
        )
    print(line)


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
    for sessions in (1, 10):
        session_figures([], sessions)
        session_figures(VOCABULARY, sessions)
    references = [path.read_text().strip() for path in sorted(LIBRIVOX.glob("*.txt"))]
    human_speech_figures("general language model", PocketsphinxOptions())
    human_speech_figures("vocabulary of the 5", PocketsphinxOptions(vocabulary=references))
    human_speech_figures(
        "vocabulary of the 5, free words",
        PocketsphinxOptions(vocabulary=references, free_words=True),
    )
    human_speech_figures(
        f"vocabulary of the 5 and {len(DISTRACTORS)} others",
        PocketsphinxOptions(vocabulary=[*DISTRACTORS, *references]),
    )


if __name__ == "__main__":
    main()
