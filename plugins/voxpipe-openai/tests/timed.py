"""One request through a backend, timed from the consumer's side: the timeout tests' driver
(for the mocked API under virtual time and for the local server in real time alike)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from dataclasses import dataclass, field

import numpy as np

from voxpipe.audio import split_frames
from voxpipe.errors import ProviderError
from voxpipe.protocols import Message, TextDelta
from voxpipe.sim.voice import speech_like
from voxpipe.vad import Utterance
from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)
from voxpipe_openai.asr import OpenAIASRStream

Backend = OpenAILLM | OpenAITTS | OpenAIASR
KINDS = ("llm", "tts", "asr")


def backend(kind: str, **options: object) -> Backend:
    if kind == "llm":
        return OpenAILLM(OpenAILLMOptions.model_validate(options))
    if kind == "tts":
        return OpenAITTS(OpenAITTSOptions.model_validate(options))
    return OpenAIASR(OpenAIASROptions.model_validate(options))


@dataclass
class Run:
    """One request: when it started, when each output came, when it ended and how."""

    started: float = 0.0
    outputs: list[float] = field(default_factory=list)
    ended: float = 0.0
    error: ProviderError | None = None
    text: str = ""

    @property
    def took(self) -> float:
        return self.ended - self.started

    @property
    def after_last_output(self) -> float:
        return self.ended - self.outputs[-1]


async def drive(client: Backend, *, pause_s: float = 0.0, within_s: float = 60.0) -> Run:
    """One chat, one synthesis or one utterance's transcription; the consumer takes
    ``pause_s`` over each output. A ``ProviderError`` ends the run and is kept; a run that
    has not ended after ``within_s`` fails the test (with ``TimeoutError``), not hang it."""
    loop = asyncio.get_running_loop()
    run = Run(started=loop.time())
    async with asyncio.timeout(within_s):
        await _drive(client, run, pause_s)
    run.ended = loop.time()
    return run


async def _drive(client: Backend, run: Run, pause_s: float) -> None:
    loop = asyncio.get_running_loop()

    async def output(text: str | None = None) -> None:
        run.outputs.append(loop.time())
        if text is not None:
            run.text = text
        await asyncio.sleep(pause_s)

    try:
        if isinstance(client, OpenAILLM):
            async with aclosing(client.chat([Message("user", "Hi")])) as events:
                async for event in events:
                    await output(run.text + (event.text if isinstance(event, TextDelta) else ""))
        elif isinstance(client, OpenAITTS):
            async with aclosing(client.synthesize("Hello there.")) as frames:
                async for _ in frames:
                    await output()
        else:
            stream = client.listen()
            try:
                utterance(stream)
                run.started = loop.time()
                async for transcript in stream:
                    await output(transcript.text)  # type: ignore[union-attr]
            finally:
                await stream.aclose()
    except ProviderError as exc:
        run.error = exc


def utterance(stream: OpenAIASRStream) -> None:
    """One utterance pushed as the session would: speech 200-800 ms, ended at 1000 ms."""
    voice = np.concatenate([np.zeros(3200, np.int16), speech_like(600, 16_000)])
    samples = np.concatenate([voice, np.zeros(3200, np.int16)])
    for frame in split_frames(samples, 16_000, 20):
        stream.push(frame)
    stream.speech_started(200.0)
    stream.speech_ended(Utterance(200.0, 800.0, 1000.0))
    stream.end_input()


def retryable(run: Run, *words: str) -> ProviderError:
    """The run's error: a plain, retryable ``ProviderError`` whose message has ``words``."""
    error = run.error
    assert type(error) is ProviderError, f"expected a ProviderError, got {error!r}"
    assert error.retryable and error.provider == "openai"
    for word in words:
        assert word in str(error), str(error)
    return error
