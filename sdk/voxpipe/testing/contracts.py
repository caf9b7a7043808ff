"""Contract test suites for ASR, LLM and TTS backends (pytest base classes).

A plugin's test module subclasses one per backend (``class TestMyTTS(TTSContract)``), sets
the class attributes and implements ``make_backend`` (and ``make_failing_backend`` when the
backend talks to a provider). Everything runs offline under virtual time (looptime).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import pytest

from voxpipe.audio import AudioFrame
from voxpipe.config import load_config
from voxpipe.errors import (
    AuthError,
    ConfigError,
    ProviderError,
    RateLimited,
)
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import Message, Transcript
from voxpipe.registry import Registry
from voxpipe.sim.voice import speech_frames
from voxpipe.testing.control import Failure, ServerControl

#: Virtual seconds the kit waits for a first output before calling a backend stuck.
FIRST_OUTPUT_TIMEOUT_S = 30.0
_KEY = "kit-secret-key-0123456789"

asyncio_test = pytest.mark.asyncio
virtual_time = pytest.mark.looptime


class BackendContract:
    """Checks shared by every kind. Set the class attributes; implement the factories."""

    kind: ClassVar[str]
    #: The name a config uses (``backend = "..."``).
    backend_name: ClassVar[str]
    #: The distribution that provides it, as ``voxpipe plugins`` shows it.
    distribution: ClassVar[str]
    #: The environment variable the key comes from; None for backends without a key.
    key_env_var: ClassVar[str | None] = None
    #: Options the options model must refuse, each with text the error must contain.
    bad_options: ClassVar[Sequence[tuple[dict[str, Any], str]]] = ()
    #: Failures ``make_failing_backend`` can produce (empty: the backend has no provider).
    failures: ClassVar[Sequence[Failure]] = tuple(Failure)
    #: Whether the backend holds a connection the mock can see closed (False for sims).
    transport_closes: ClassVar[bool] = True

    def make_backend(self, control: ServerControl, context: BackendContext) -> Any:
        """The backend, its transport mocked: send the first part of a response at once,
        ``await control.hold()`` before the rest, ``control.mark_closed()`` on close."""
        raise NotImplementedError

    def make_failing_backend(self, failure: Failure, context: BackendContext) -> Any:
        """The backend, its transport mocked to answer with ``failure``."""
        raise NotImplementedError

    # How each kind starts a stream (overridden below).
    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        raise NotImplementedError

    def check_output(self, item: Any, context: BackendContext) -> None:
        """Assertions on every item a stream yields."""

    @pytest.fixture(autouse=True)
    def _key_in_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if self.key_env_var and not os.environ.get(self.key_env_var):
            monkeypatch.setenv(self.key_env_var, _KEY)

    # --- registration and options ------------------------------------------------------

    def test_registered_through_the_entry_point(self) -> None:
        infos = [b for b in Registry().backends(self.kind) if b.name == self.backend_name]
        assert infos, (
            f"no {self.kind} backend {self.backend_name!r} among the installed entry points: "
            f"is the plugin installed (pip install -e .) with a [project.entry-points.voxpipe]?"
        )
        (info,) = infos
        assert info.status == "ok", info.status
        assert info.distribution == self.distribution
        assert info.version == metadata.version(self.distribution)

    def test_listed_by_voxpipe_plugins(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "voxpipe.cli", "plugins", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["backends"]
        assert {
            "kind": self.kind,
            "name": self.backend_name,
            "distribution": self.distribution,
            "version": metadata.version(self.distribution),
            "status": "ok",
        } in rows

    def test_bad_options_are_config_errors_naming_the_key(self) -> None:
        for options, expected in self.bad_options:
            config = {self.kind: {"backend": self.backend_name, **options}}
            with pytest.raises(ConfigError) as info:
                load_config(config)
            assert f"[{self.kind}]" in str(info.value) and expected in str(info.value)

    def test_unknown_option_is_a_config_error(self) -> None:
        config = {self.kind: {"backend": self.backend_name, "no_such_option_xyz": 1}}
        with pytest.raises(ConfigError, match="no_such_option_xyz: unknown option"):
            load_config(config)

    def test_api_key_in_config_is_refused(self) -> None:
        config = {self.kind: {"backend": self.backend_name, "api_key": "sk-in-a-file"}}
        with pytest.raises(ConfigError, match="never read from config files") as info:
            load_config(config)
        if self.key_env_var:
            assert self.key_env_var in str(info.value)

    # --- streaming and cancellation ------------------------------------------------------

    @asyncio_test
    @virtual_time
    async def test_first_output_comes_before_the_response_is_complete(self) -> None:
        context = BackendContext()
        control = ServerControl()
        backend = self.make_backend(control, context)
        try:
            async with aclosing(self.start(backend, context, control)) as stream:
                try:
                    first = await asyncio.wait_for(anext(stream), FIRST_OUTPUT_TIMEOUT_S)
                except TimeoutError:
                    pytest.fail(
                        f"no output within {FIRST_OUTPUT_TIMEOUT_S:.0f} s while the provider "
                        "held back the end of its response: the backend waits for the whole "
                        "response instead of streaming it"
                    )
                assert not control.release.is_set()
                self.check_output(first, context)
                control.release.set()
                rest = [item async for item in stream]
            for item in rest:
                self.check_output(item, context)
            assert rest, "the whole response came as one item: nothing was streamed"
        finally:
            await backend.aclose()

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("how", ["aclose", "cancel"])
    async def test_stopping_mid_stream_releases_everything(self, how: str) -> None:
        """Closing the stream (``aclose()``) or cancelling the task consuming it."""
        context = BackendContext()
        control = ServerControl()
        backend = self.make_backend(control, context)
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _ in self.start(backend, context, control):
                got_one.set()

        if how == "aclose":
            stream = self.start(backend, context, control)
            await asyncio.wait_for(anext(stream), FIRST_OUTPUT_TIMEOUT_S)
            await stream.aclose()
        else:
            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_one.wait(), FIRST_OUTPUT_TIMEOUT_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._assert_released(control)
        await backend.aclose()

    async def _assert_released(self, control: ServerControl) -> None:
        if self.transport_closes:
            try:
                await asyncio.wait_for(control.closed.wait(), 1.0)
            except TimeoutError:
                pytest.fail(
                    "the provider's response/connection was left open after the stream "
                    "ended early: close it in the generator's finally/async with"
                )
        # Generators abandoned inside an SDK are closed by asyncio's finalizer in short-lived
        # tasks; collect them and give those tasks a few loop turns to finish.
        gc.collect()
        for _ in range(20):
            await asyncio.sleep(0)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"tasks still running after the stream was closed: {leftover}"

    # --- provider errors -------------------------------------------------------------------

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("failure", list(Failure))
    async def test_provider_errors_map_to_voxpipe_errors(self, failure: Failure) -> None:
        if failure not in self.failures:
            pytest.skip(f"{self.backend_name} cannot fail with {failure.value}")
        context = BackendContext()
        backend = self.make_failing_backend(failure, context)
        try:
            with pytest.raises(ProviderError) as info:
                async with aclosing(self.start(backend, context, ServerControl())) as stream:
                    async for _ in stream:
                        pass
        finally:
            await backend.aclose()
        error = info.value
        message = str(error)
        assert error.provider, f"{error!r} does not say which provider failed (provider=...)"
        if self.key_env_var:
            key = os.environ.get(self.key_env_var, "")
            assert not key or key not in message, "the API key leaked into an error message"
        if failure is Failure.AUTH:
            assert isinstance(error, AuthError), f"401 should be AuthError, got {error!r}"
            if self.key_env_var:
                assert error.env_var == self.key_env_var and self.key_env_var in message
        elif failure is Failure.RATE_LIMIT:
            assert isinstance(error, RateLimited), f"429 should be RateLimited, got {error!r}"
            assert error.retry_after == pytest.approx(Failure.RETRY_AFTER_S)
            assert error.retryable
        elif failure is Failure.SERVER:
            assert type(error) is ProviderError and error.retryable, repr(error)
        else:
            assert type(error) is ProviderError, repr(error)
            assert error.provider in message, "name the provider in a malformed-payload error"

    @asyncio_test
    async def test_missing_key_is_an_auth_error_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if not self.key_env_var:
            pytest.skip("this backend needs no key")
        monkeypatch.delenv(self.key_env_var, raising=False)
        with pytest.raises(AuthError) as info:
            backend = self.make_backend(ServerControl(), BackendContext())
            try:
                context = BackendContext()
                async with aclosing(self.start(backend, context, ServerControl())) as stream:
                    await anext(stream)
            finally:
                await backend.aclose()
        assert self.key_env_var in str(info.value)


class LLMContract(BackendContract):
    """An LLM backend streams text deltas of one reply."""

    kind = "llm"
    messages: ClassVar[list[Message]] = [
        Message("system", "You are brief."),
        Message("user", "Say hello."),
    ]

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        return backend.stream(self.messages)

    def check_output(self, item: Any, context: BackendContext) -> None:
        assert isinstance(item, str), f"LLM deltas are str, got {type(item).__name__}"


class TTSContract(BackendContract):
    """A TTS backend streams AudioFrames at the session rate, whatever the provider's rate."""

    kind = "tts"
    text: ClassVar[str] = "Hello there. How can I help you today?"

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        return backend.synthesize(self.text)

    def check_output(self, item: Any, context: BackendContext) -> None:
        assert isinstance(item, AudioFrame), f"TTS yields AudioFrame, got {type(item).__name__}"
        assert item.sample_rate == context.sample_rate, (
            f"frame at {item.sample_rate} Hz; the session runs at {context.sample_rate} Hz"
        )
        assert item.samples.dtype.name == "int16" and item.samples.ndim == 1
        assert len(item.samples) > 0

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("sample_rate", [8_000, 16_000, 48_000])
    async def test_audio_comes_at_the_session_rate(self, sample_rate: int) -> None:
        context = BackendContext(sample_rate=sample_rate)
        control = ServerControl()
        control.release.set()
        backend = self.make_backend(control, context)
        try:
            async with aclosing(self.start(backend, context, control)) as stream:
                frames = [frame async for frame in stream]
        finally:
            await backend.aclose()
        assert frames
        for frame in frames:
            self.check_output(frame, context)


class ASRContract(BackendContract):
    """An ASR backend hears a live stream and yields transcripts while it flows."""

    kind = "asr"

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        return backend.transcribe(self.speech(context, control))

    async def speech(
        self, context: BackendContext, control: ServerControl
    ) -> AsyncIterator[AudioFrame]:
        """300 ms of silence, speech, then silence in real-time-paced frames until the kit
        sets ``control.release`` (at most 20 s): output must come while audio still flows.
        (ASR mocks should not ``hold()``: the kit gates the input instead.)"""
        n = context.sample_rate * context.frame_ms // 1000
        silence = np.zeros(n, dtype=np.int16)
        voice = speech_frames("hello there how are you", context.sample_rate, context.frame_ms)
        frames = [
            *(AudioFrame(silence, context.sample_rate) for _ in range(300 // context.frame_ms)),
            *voice,
        ]
        t = 0.0
        for frame in frames:
            await asyncio.sleep(context.frame_ms / 1000)
            yield frame.at(t)
            t += context.frame_ms
        while t < 20_000 and not control.release.is_set():
            await asyncio.sleep(context.frame_ms / 1000)
            yield AudioFrame(silence, context.sample_rate, t)
            t += context.frame_ms

    def check_output(self, item: Any, context: BackendContext) -> None:
        assert isinstance(item, Transcript), f"ASR yields Transcript, got {type(item).__name__}"

    @asyncio_test
    @virtual_time
    async def test_first_output_comes_before_the_response_is_complete(self) -> None:
        # For an ASR the "response" is the audio: a transcript must come while it flows.
        context = BackendContext()
        control = ServerControl()
        backend = self.make_backend(control, context)
        transcripts: list[Transcript] = []
        try:
            async with aclosing(self.start(backend, context, control)) as stream:
                async for transcript in stream:
                    self.check_output(transcript, context)
                    transcripts.append(transcript)
                    if transcript.is_final:
                        control.release.set()  # ends the input too
        finally:
            await backend.aclose()
        assert any(t.is_final for t in transcripts), (
            "no final transcript while the audio was still flowing: the backend waits for the "
            "end of the input instead of endpointing on the speech"
        )
