"""Contract test suites for backends and audio sinks (pytest base classes, plugin API v2).

A plugin's test module subclasses one per backend (``class TestMyTTS(TTSContract)``), sets
the class attributes and implements ``make_backend`` (and ``make_failing_backend`` when the
backend talks to a provider); a sink's tests subclass ``SinkContract``. Backends are driven
through ``voxpipe.compat.as_v2``, as the session drives them, so a plugin API v1 backend is
checked through the core's adapter. Everything runs offline under virtual time (looptime).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import pytest

from voxpipe.audio import AudioFrame
from voxpipe.clock import SessionClock
from voxpipe.compat import as_v2
from voxpipe.config import load_config
from voxpipe.errors import AuthError, ConfigError, ProviderError, RateLimited
from voxpipe.hookspecs import BackendContext
from voxpipe.protocols import (
    Alignment,
    ASRStream,
    EndOfTurn,
    Finish,
    Message,
    SpeechStarted,
    TextDelta,
    ToolCall,
    Transcript,
    Usage,
    tts_is_streaming,
)
from voxpipe.registry import Registry
from voxpipe.sim.voice import speech_frames
from voxpipe.testing.control import Failure, ServerControl
from voxpipe.vad import Utterance

#: Virtual seconds the kit waits for a first output before calling a backend stuck.
FIRST_OUTPUT_TIMEOUT_S = 30.0
#: Virtual seconds a stream may take to end once its input (text, audio) has ended.
END_TIMEOUT_S = 10.0
#: The ASR kit's audio: silence before the speech, the silence after it that ends it (the
#: session's endpointer), and when the audio stops at the latest.
LEAD_MS = 300
ENDPOINT_MS = 200
SPEECH_LIMIT_MS = 20_000
_KEY = "kit-secret-key-0123456789"
_DELTA = re.compile(r"\s*\S+")

asyncio_test = pytest.mark.asyncio
virtual_time = pytest.mark.looptime


class BackendContract:
    """Checks shared by every kind. Set the class attributes; implement the factories."""

    kind: ClassVar[str]
    #: The item the first-output test waits for (``TextDelta``, ``AudioFrame``).
    output_type: ClassVar[type]
    #: The name a config uses (``backend = "..."``).
    backend_name: ClassVar[str]
    #: The distribution that provides it, as ``voxpipe plugins`` shows it.
    distribution: ClassVar[str]
    #: The environment variable the key comes from; None for backends without a key.
    key_env_var: ClassVar[str | None] = None
    #: Options the options model must refuse, each with text the error must contain.
    bad_options: ClassVar[Sequence[tuple[dict[str, Any], str]]] = ()
    #: Failures ``make_failing_backend`` can produce (empty: the backend has no provider).
    #: All of them by default: leave one out only when the transport cannot carry it (a
    #: websocket has no content type; a simulated backend has no wire format at all).
    failures: ClassVar[Sequence[Failure]] = tuple(Failure)
    #: Whether the backend holds a connection the mock can see closed (False for sims).
    transport_closes: ClassVar[bool] = True

    def make_backend(self, control: ServerControl, context: BackendContext) -> Any:
        """The backend, its transport mocked: send the first part of a response at once,
        ``await control.hold()`` before the rest; ``control.mark_opened()`` when the client
        opens a provider stream, ``control.mark_closed()`` when it closes one."""
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
        info = self._registered()
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
            "api_version": self._registered().api_version,
            "status": "ok",
        } in rows

    def _registered(self) -> Any:
        infos = [b for b in Registry().backends(self.kind) if b.name == self.backend_name]
        assert infos, (
            f"no {self.kind} backend {self.backend_name!r} among the installed entry points: "
            f"is the plugin installed (pip install -e .) with a [project.entry-points.voxpipe]?"
        )
        (info,) = infos
        return info

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
        name = self.output_type.__name__

        def check(item: Any) -> None:
            self.check_output(item, context)

        try:
            async with aclosing(self.start(backend, context, control)) as stream:
                try:
                    found = await _read_until(
                        stream, self._is_output, check, FIRST_OUTPUT_TIMEOUT_S
                    )
                except TimeoutError:
                    pytest.fail(
                        f"no {name} within {FIRST_OUTPUT_TIMEOUT_S:.0f} s while the provider "
                        "held back the end of its response: the backend waits for the whole "
                        "response instead of streaming it"
                    )
                assert found, f"the stream ended without a {name}"
                control.release.set()
                rest = [item async for item in stream]
                _assert_streams_closed(control, "the stream ended")
            for item in rest:
                self.check_output(item, context)
            assert rest, f"nothing came after the first {name}: nothing was streamed"
        finally:
            await backend.aclose()

    def _is_output(self, item: Any) -> bool:
        return type(item) is self.output_type

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("how", ["aclose", "cancel"])
    async def test_stopping_mid_stream_releases_everything(self, how: str) -> None:
        """Closing the stream (``aclose()``) or cancelling the task consuming it."""
        context = BackendContext()
        control = ServerControl()
        backend = self.make_backend(control, context)
        try:
            await self._stop_mid_stream(self.start(backend, context, control), how, control)
        finally:
            await backend.aclose()

    async def _stop_mid_stream(
        self, stream: AsyncGenerator[Any, None], how: str, control: ServerControl
    ) -> None:
        """Stop ``stream`` after its first item; check at once that the provider's streams
        were closed, then that no task is left."""
        if how == "aclose":
            await asyncio.wait_for(anext(stream), FIRST_OUTPUT_TIMEOUT_S)
            await stream.aclose()
            self._assert_closed_at_once(control, "aclose() of the stream")
        else:
            got_one = asyncio.Event()

            async def consume() -> None:
                try:
                    async for _ in stream:
                        got_one.set()
                except asyncio.CancelledError:  # it has just gone through the stream
                    self._assert_closed_at_once(control, "the cancellation of its consumer")
                    raise

            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_one.wait(), FIRST_OUTPUT_TIMEOUT_S)
            await _stop(task)
        await _assert_no_tasks_left("the stream was closed")

    def _assert_closed_at_once(self, control: ServerControl, after: str) -> None:
        """Called as soon as a stream stopped early, before the event loop runs again."""
        _assert_streams_closed(control, after)
        if self.transport_closes and not control.opened:  # a mock that reports closes only
            assert control.closed.is_set(), (
                "the provider's response/connection was left open after the stream "
                "ended early: close it in the generator's finally/async with"
            )

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
            error = await self._failure_of(backend, context, failure)
        finally:
            await backend.aclose()
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
        elif failure is Failure.TRUNCATED:
            assert type(error) is ProviderError, repr(error)
            assert error.retryable, (
                f"{error!r}: a truncated stream is retryable (retryable=True): the stream was "
                "cut, a new request may well come whole"
            )
            assert error.provider in message, "name the provider in a truncated-stream error"
        elif failure is Failure.WRONG_CONTENT_TYPE:
            assert type(error) is ProviderError, repr(error)
            assert not error.retryable, (
                f"{error!r}: a body of the wrong format is not retryable (retryable=False): "
                "the same request would get the same answer"
            )
            assert error.provider in message, "name the provider in a wrong-content-type error"
        else:
            assert type(error) is ProviderError, repr(error)
            assert error.provider in message, "name the provider in a malformed-payload error"

    async def _failure_of(
        self, backend: Any, context: BackendContext, failure: Failure
    ) -> ProviderError:
        """The ``ProviderError`` that ends a stream of ``backend`` answered with ``failure``;
        a test failure, saying what came, if the stream ends without one."""
        items: list[Any] = []
        try:
            async with aclosing(self.start(backend, context, ServerControl())) as stream:
                async for item in stream:
                    items.append(item)
        except ProviderError as exc:
            return exc
        except Exception as exc:
            pytest.fail(
                f"the {failure.value} response raised {exc!r}: map provider failures to "
                "voxpipe.errors.ProviderError (or AuthError, RateLimited)"
            )
        shown = ", ".join(type(item).__name__ for item in items[:5]) or "nothing"
        if failure in (Failure.TRUNCATED, Failure.WRONG_CONTENT_TYPE):
            pytest.fail(
                f"the {failure.value} response passed as success (the stream gave {shown}, "
                "then ended as if it were whole): a stream that ends without its end marker "
                "or final, and a body that is not the format asked for, must end in a "
                "ProviderError"
            )
        pytest.fail(f"the {failure.value} response passed as success (the stream gave {shown})")

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
    """An LLM backend streams one reply as events: text deltas, usage, tool calls.

    A v1 LLM (``stream()`` of str) is checked through ``voxpipe.compat``'s adapter."""

    kind = "llm"
    output_type = TextDelta
    messages: ClassVar[list[Message]] = [
        Message("system", "You are brief."),
        Message("user", "Say hello."),
    ]

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        return as_v2("llm", backend).chat(self.messages)

    def check_output(self, item: Any, context: BackendContext) -> None:
        assert type(item) in (TextDelta, Usage, ToolCall, Finish), (
            f"chat() yields TextDelta, Usage, ToolCall or Finish (voxpipe.protocols; the session "
            f"dispatches on exactly these types), got {type(item).__name__}"
        )


class TTSContract(BackendContract):
    """A TTS backend speaks text as AudioFrames at the session rate, whatever the provider's
    rate, with optional ``Alignment``; a TTS with ``synthesize_stream`` also speaks streamed
    text before it ends."""

    kind = "tts"
    output_type = AudioFrame
    #: What the kit has spoken: two sentences (the streaming test holds the text after one).
    text: ClassVar[str] = "Hello there. How can I help you today?"
    #: Whether the backend gives ``Alignment`` (then required); any that comes is checked.
    emits_alignment: ClassVar[bool] = False

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        """``synthesize(text)``; a TTS that only takes streamed text gets it word by word."""
        if callable(getattr(backend, "synthesize", None)):
            return backend.synthesize(self.text)
        assert callable(getattr(backend, "synthesize_stream", None)), (
            "a TTS has synthesize(text) for one phrase, synthesize_stream(text_deltas) for "
            "streamed text, or both (voxpipe.protocols.TTS and StreamingTTS)"
        )
        return backend.synthesize_stream(_deltas(self.text))

    def check_output(self, item: Any, context: BackendContext) -> None:
        if type(item) is Alignment:
            return  # checked over the whole stream (check_alignment)
        assert type(item) is AudioFrame, (
            f"a TTS yields AudioFrame or voxpipe.protocols.Alignment (the session dispatches "
            f"on exactly these types), got {type(item).__name__}"
        )
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
        items = await self._synthesize(context, streamed=False)
        assert any(type(item) is AudioFrame for item in items), "no audio came"
        for item in items:
            self.check_output(item, context)

    @asyncio_test
    @virtual_time
    async def test_alignment_matches_the_audio_and_the_text(self) -> None:
        context = BackendContext()
        self._check_alignment(await self._synthesize(context, streamed=False), context)

    @asyncio_test
    @virtual_time
    async def test_streamed_alignment_matches_the_audio_and_the_text(self) -> None:
        context = BackendContext()
        self._check_alignment(await self._synthesize(context, streamed=True), context)

    @asyncio_test
    @virtual_time
    async def test_streamed_text_is_spoken_before_it_ends(self) -> None:
        """The text stream stays open after a complete sentence: audio must come anyway."""
        assert re.search(r"[.!?]\s+\S", self.text), (
            "TTSContract.text needs a complete sentence before more text (the text is held "
            "open there)"
        )
        context = BackendContext()
        control = ServerControl()
        control.release.set()  # the kit gates the text here, not the provider
        backend = self.make_backend(control, context)
        more_text = asyncio.Event()

        def check(item: Any) -> None:
            self.check_output(item, context)

        try:
            _skip_unless_streaming(backend)
            stream = backend.synthesize_stream(_deltas(self.text, more_text))
            async with aclosing(stream):
                try:
                    found = await _read_until(
                        stream, self._is_output, check, FIRST_OUTPUT_TIMEOUT_S
                    )
                except TimeoutError:
                    pytest.fail(
                        f"no audio within {FIRST_OUTPUT_TIMEOUT_S:.0f} s while the text stream "
                        f"stayed open after a complete sentence of {self.text!r}: a streaming "
                        "TTS must speak what it has without waiting for the end of the text "
                        "(one that buffers text must flush at each phrase end)"
                    )
                assert found, "synthesize_stream() ended before its text did"
                more_text.set()
                try:
                    async with asyncio.timeout(END_TIMEOUT_S):
                        rest = [item async for item in stream]
                except TimeoutError:
                    pytest.fail(
                        f"synthesize_stream() did not end within {END_TIMEOUT_S:.0f} s after "
                        "its text ended: speak what is left, then end the stream"
                    )
                _assert_streams_closed(control, "the stream ended")
        finally:
            await backend.aclose()
        for item in rest:
            self.check_output(item, context)

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("how", ["aclose", "cancel"])
    async def test_stopping_a_text_stream_releases_everything(self, how: str) -> None:
        context = BackendContext()
        control = ServerControl()
        backend = self.make_backend(control, context)
        try:
            _skip_unless_streaming(backend)
            # The text stays open after its first sentence: the stop comes mid-text.
            stream = backend.synthesize_stream(_deltas(self.text, asyncio.Event()))
            await self._stop_mid_stream(stream, how, control)
        finally:
            await backend.aclose()

    async def _synthesize(self, context: BackendContext, *, streamed: bool) -> list[Any]:
        """Everything one synthesis of ``text`` yields, the provider not held back;
        ``streamed``: through ``synthesize_stream``, fed word by word."""
        control = ServerControl()
        control.release.set()
        backend = self.make_backend(control, context)
        try:
            if streamed:
                _skip_unless_streaming(backend)
                stream = backend.synthesize_stream(_deltas(self.text))
            else:
                stream = self.start(backend, context, control)
            async with aclosing(stream):
                items = [item async for item in stream]
                _assert_streams_closed(control, "the stream ended")
                return items
        finally:
            await backend.aclose()

    def _check_alignment(self, items: list[Any], context: BackendContext) -> None:
        if not any(type(item) is Alignment for item in items):
            assert not self.emits_alignment, "emits_alignment = True but no Alignment came"
            pytest.skip("no Alignment came (emits_alignment = False): nothing to check")
        check_alignment(items, self.text, context.frame_ms)


def check_alignment(items: Sequence[Any], text: str, frame_ms: float) -> None:
    """The ``Alignment`` among one synthesis stream's ``items`` agrees with its audio and with
    the ``text`` it was given: each piece starts before it ends, starts never go back, none
    ends past the stream's audio (one frame of slack), and the pieces joined are the text
    (up to whitespace), as the session joins them to tell what the user heard. No
    ``Alignment`` at all passes."""
    alignments = [item for item in items if type(item) is Alignment]
    if not alignments:
        return
    audio_ms = sum(item.duration_ms for item in items if type(item) is AudioFrame)
    for a in alignments:
        assert a.start_ms <= a.end_ms, f"{a} ends before it starts"
    for a, b in itertools.pairwise(alignments):
        assert a.start_ms <= b.start_ms, (
            f"{b} starts before the piece before it, {a}: alignment times are ms of this "
            "stream's audio from its first sample, in the order spoken"
        )
    last = max(alignments, key=lambda a: a.end_ms)
    assert last.end_ms <= audio_ms + frame_ms, (
        f"{last} ends past the {audio_ms:.0f} ms of audio the stream gave: alignment times "
        "are ms of the stream's own audio (not samples, not session time)"
    )
    joined = "".join(a.text for a in alignments)
    assert " ".join(joined.split()) == " ".join(text.split()), (
        f"the Alignment pieces joined give {joined!r}, not the text spoken {text!r}: each piece "
        "is the stretch of the input text it speaks, spaces and punctuation included"
    )


class ASRContract(BackendContract):
    """An ASR backend hears a live stream and gives each utterance's final transcript when
    the session's VAD ends it, while the audio still flows.

    The kit plays the session's part (``_Session``): it pushes paced frames into
    ``listen()``'s stream and marks the speech. A v1 ASR (``transcribe()``) is checked
    through ``voxpipe.compat``'s adapter. (ASR mocks should not ``hold()``: the kit gates the
    input instead.)"""

    kind = "asr"
    output_type = Transcript
    #: What the kit's user says (its frames carry it as ``script``, for simulated ASRs).
    script: ClassVar[str] = "hello there how are you"

    def start(self, backend: Any, context: BackendContext, control: ServerControl) -> Any:
        return _events(backend, _Session(context, control, self.script))

    def check_output(self, item: Any, context: BackendContext) -> None:
        assert type(item) in (SpeechStarted, Transcript, EndOfTurn), (
            f"an ASR stream yields SpeechStarted, Transcript or EndOfTurn (voxpipe.protocols; "
            f"the session dispatches on exactly these types), got {type(item).__name__}"
        )

    @asyncio_test
    @virtual_time
    async def test_first_output_comes_before_the_response_is_complete(self) -> None:
        """For an ASR the "response" is the audio: a final must come while it flows."""
        context = BackendContext()
        control = ServerControl()
        session = _Session(context, control, self.script)
        backend = self.make_backend(control, context)

        def check(event: Any) -> None:
            self.check_output(event, context)

        try:
            async with aclosing(_events(backend, session)) as events:
                try:
                    found = await _read_until(
                        events, _is_final, check, SPEECH_LIMIT_MS / 1000 + END_TIMEOUT_S
                    )
                except TimeoutError:
                    pytest.fail(
                        f"no final transcript within {SPEECH_LIMIT_MS / 1000:.0f} s of audio, "
                        f"and the events had not ended {END_TIMEOUT_S:.0f} s after end_input(): "
                        "finalize each utterance when speech_ended(utterance) is called, and "
                        "end the events after end_input()"
                    )
                assert found and not session.input_ended, (
                    f"no final Transcript while the audio was still flowing (speech_ended() "
                    f"came at {session.speech_ended_ms} ms, the audio went on to "
                    f"{SPEECH_LIMIT_MS / 1000:.0f} s): finalize the utterance when "
                    "speech_ended(utterance) is called, instead of waiting for the end of the "
                    "input"
                )
                control.release.set()  # the audio stops: end_input()
                rest = await _rest(events)
            _assert_streams_closed(control, "the ASR stream's aclose()")
        finally:
            await backend.aclose()
        for event in rest:
            self.check_output(event, context)

    @asyncio_test
    @virtual_time
    async def test_end_input_finishes_the_pending_final(self) -> None:
        """The input ends just after ``speech_ended``: its final must still come."""
        context = BackendContext()
        control = ServerControl()
        control.release.set()  # end_input() right after speech_ended()
        backend = self.make_backend(control, context)
        try:
            async with aclosing(self.start(backend, context, control)) as events:
                got = await _rest(events, SPEECH_LIMIT_MS / 1000 + END_TIMEOUT_S)
            _assert_streams_closed(control, "the ASR stream's aclose()")
        finally:
            await backend.aclose()
        for event in got:
            self.check_output(event, context)
        assert any(_is_final(event) for event in got), (
            "end_input() came just after speech_ended(utterance) and the events ended without "
            "its final Transcript: finish the pending finals before ending the events"
        )

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("how", ["aclose", "cancel"])
    async def test_stopping_mid_stream_releases_everything(self, how: str) -> None:
        """``aclose()`` on the stream after an event, or cancelling the session's tasks."""
        context = BackendContext()
        control = ServerControl()
        session = _Session(context, control, self.script)
        backend = self.make_backend(control, context)
        try:
            stream: ASRStream = as_v2("asr", backend).listen()
            events = aiter(stream)
            if how == "aclose":
                talking = asyncio.create_task(session.talk(stream))
                await asyncio.wait_for(anext(events), FIRST_OUTPUT_TIMEOUT_S)
                await _stop(talking)
                await stream.aclose()
                _assert_streams_closed(control, "the ASR stream's aclose()")
            else:
                got_one = asyncio.Event()

                async def run() -> None:  # the session's input and hearing tasks
                    async with asyncio.TaskGroup() as group:
                        group.create_task(session.talk(stream))
                        async for _ in events:
                            got_one.set()

                task = asyncio.create_task(run())
                await asyncio.wait_for(got_one.wait(), FIRST_OUTPUT_TIMEOUT_S)
                await _stop(task)
            await self._assert_released(control)
            await _aclose(events)
            if how == "cancel":
                await stream.aclose()  # as the session does at its end
                _assert_streams_closed(control, "the ASR stream's aclose()")
        finally:
            await backend.aclose()

    async def _assert_released(self, control: ServerControl) -> None:
        """After the session's tasks were stopped: the connection closed within a second
        (the stream's own tasks may take some loop turns), no task left."""
        if self.transport_closes:
            try:
                await asyncio.wait_for(control.closed.wait(), 1.0)
            except TimeoutError:
                pytest.fail(
                    "the provider's response/connection was left open after the stream "
                    "ended early: close it in the generator's finally/async with"
                )
        await _assert_no_tasks_left("the stream was closed")


class _Session:
    """The session's part for one ASR stream: ``LEAD_MS`` of silence, ``script`` spoken,
    then silence, in real-time-paced frames until ``control.release`` is set (at least until
    the speech is marked ended, at most ``SPEECH_LIMIT_MS``), then ``end_input()``. The VAD's
    marks follow the frame that decides them: ``speech_started`` the speech's first frame
    (dated to it), ``speech_ended`` the frame ``ENDPOINT_MS`` after its last."""

    def __init__(self, context: BackendContext, control: ServerControl, script: str) -> None:
        self.context, self.control, self.script = context, control, script
        self.speech_ended_ms: float | None = None
        self.input_ended = False

    async def talk(self, stream: ASRStream) -> None:
        rate, frame_ms = self.context.sample_rate, self.context.frame_ms
        clock = SessionClock()
        silence = np.zeros(rate * frame_ms // 1000, dtype=np.int16)
        voice = list(
            speech_frames(self.script, rate, frame_ms, start_ms=LEAD_MS, script=self.script)
        )
        speech = Utterance(voice[0].start_ms, voice[-1].end_ms, voice[-1].end_ms + ENDPOINT_MS)

        async def deliver(frame: AudioFrame) -> None:
            await clock.sleep_until(frame.end_ms)  # delivered once captured, as sources do
            stream.push(frame)

        for at in range(0, LEAD_MS, frame_ms):
            await deliver(AudioFrame(silence, rate, at, ""))
        for i, frame in enumerate(voice):
            await deliver(frame)
            if i == 0:
                stream.speech_started(speech.start_ms)
        t = speech.end_ms
        while self.speech_ended_ms is None or (
            t < SPEECH_LIMIT_MS and not self.control.release.is_set()
        ):
            await deliver(AudioFrame(silence, rate, t, ""))
            t += frame_ms
            if self.speech_ended_ms is None and t >= speech.detected_ms:
                stream.speech_ended(speech)
                self.speech_ended_ms = t
        self.input_ended = True
        stream.end_input()


async def _events(backend: Any, session: _Session) -> AsyncGenerator[Any, None]:
    """The events of a stream of ``backend`` (adapted to v2) that ``session`` talks into;
    closed as the session closes it."""
    stream: ASRStream = as_v2("asr", backend).listen()
    events = aiter(stream)
    talking = asyncio.create_task(session.talk(stream))
    try:
        async for event in events:
            yield event
    finally:
        try:
            await _stop(talking)
        finally:
            await _aclose(events)
            await stream.aclose()


def _is_final(event: Any) -> bool:
    return type(event) is Transcript and event.is_final


async def _rest(events: AsyncIterator[Any], timeout_s: float = END_TIMEOUT_S) -> list[Any]:
    """The events left; fails if they do not end within ``timeout_s`` (the input has ended
    or will, in time to leave ``END_TIMEOUT_S``)."""
    try:
        async with asyncio.timeout(timeout_s):
            return [event async for event in events]
    except TimeoutError:
        pytest.fail(
            f"the events did not end within {END_TIMEOUT_S:.0f} s after end_input(): finish "
            "the pending finals, then end the iteration"
        )


class SinkContract:
    """An audio sink takes each frame when it should start playing, and ``clear(at_ms)``
    stops the output at once: it returns when the output went silent, at most one frame
    after ``at_ms``, and goes on taking frames afterwards. Implement ``make_sink``."""

    frame_ms: ClassVar[int] = 20
    #: What the kit's replies say, and when it cuts the first one (mid-frame).
    reply_text: ClassVar[str] = "hello there"
    cut_ms: ClassVar[float] = 250.0
    #: Where the reply after the cut starts.
    next_reply_ms: ClassVar[float] = 1_000.0

    def make_sink(self, sample_rate: int) -> Any:
        """The sink, writing ``sample_rate`` audio (a file, a socket: mocked or temporary)."""
        raise NotImplementedError

    async def play_reply(
        self,
        sink: Any,
        clock: SessionClock,
        sample_rate: int,
        start_ms: float,
        cut_at_ms: float | None = None,
    ) -> float | None:
        """Hand a reply's frames to ``sink`` from ``start_ms``, each at its start time, as
        playout does; with ``cut_at_ms``, stop it there with ``clear`` and return what that
        returned."""
        for frame in speech_frames(self.reply_text, sample_rate, self.frame_ms, start_ms=start_ms):
            if cut_at_ms is not None and frame.start_ms > cut_at_ms:
                break
            await clock.sleep_until(frame.start_ms)
            await sink.write(frame)
        if cut_at_ms is None:
            return None
        await clock.sleep_until(cut_at_ms)
        silent: float = sink.clear(cut_at_ms)
        assert cut_at_ms <= silent <= cut_at_ms + self.frame_ms, (
            f"clear({cut_at_ms}) returned {silent}: return the session time the output went "
            f"silent, from at_ms to the end of the frame playing (at most {self.frame_ms} ms "
            "later), and drop the audio queued after it"
        )
        return silent

    @asyncio_test
    @virtual_time
    @pytest.mark.parametrize("sample_rate", [8_000, 16_000, 48_000])
    async def test_clear_silences_the_output_within_a_frame(self, sample_rate: int) -> None:
        sink = self.make_sink(sample_rate)
        clock = SessionClock()
        await self.play_reply(sink, clock, sample_rate, 0.0, self.cut_ms)
        await sink.aclose()

    @asyncio_test
    @virtual_time
    async def test_writing_goes_on_after_clear(self) -> None:
        sink = self.make_sink(16_000)
        clock = SessionClock()
        await self.play_reply(sink, clock, 16_000, 0.0, self.cut_ms)
        await self.play_reply(sink, clock, 16_000, self.next_reply_ms)
        await self.play_reply(
            sink, clock, 16_000, 2 * self.next_reply_ms, 2 * self.next_reply_ms + 90
        )
        await sink.aclose()

    @asyncio_test
    @virtual_time
    async def test_aclose_after_clear_releases_everything(self) -> None:
        sink = self.make_sink(16_000)
        await self.play_reply(sink, SessionClock(), 16_000, 0.0, self.cut_ms)
        await sink.aclose()
        await _assert_no_tasks_left("the sink was closed")


def _skip_unless_streaming(backend: Any) -> None:
    if not tts_is_streaming(backend):
        pytest.skip("no synthesize_stream: a per-phrase TTS, fed whole phrases by the session")


async def _deltas(text: str, more_text: asyncio.Event | None = None) -> AsyncIterator[str]:
    """``text`` word by word, as an LLM streams it ("Hello", " there.", ...). With
    ``more_text``: after the first complete sentence the stream stays open until it is set."""
    deltas = _DELTA.findall(text)
    for i, delta in enumerate(deltas):
        yield delta
        if more_text is not None and delta[-1] in ".!?" and i + 1 < len(deltas):
            await more_text.wait()
            more_text = None


async def _read_until(
    stream: AsyncIterator[Any],
    wanted: Callable[[Any], bool],
    check: Callable[[Any], None],
    timeout_s: float,
) -> bool:
    """Read ``stream`` up to its first ``wanted`` item, ``check``-ing each: whether one came
    before the end; ``TimeoutError`` if neither happens within ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        async for item in stream:
            check(item)
            if wanted(item):
                return True
    return False


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; an error it failed with is raised here."""
    task.cancel()
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, Exception):
        raise outcome


async def _aclose(iterator: Any) -> None:
    """Close an async iterator that can be closed (a generator), as its consumer would."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _assert_streams_closed(control: ServerControl, after: str) -> None:
    """Every provider stream the mock saw opened is closed. Call it at once after ``after``,
    before the event loop runs again: asyncio closes an abandoned async generator only
    later, in a task on the loop, so a stream left to that, or to the garbage collector, is
    still open here."""
    assert not control.open_streams, (
        f"a provider stream the backend opened was still open right after {after} "
        f"({control.open_streams} of {control.opened} open): close it yourself however your "
        "stream ends (async with / contextlib.aclosing / try: ... finally: await "
        "stream.aclose()); leaving it to garbage collection does not count"
    )


async def _assert_no_tasks_left(after: str) -> None:
    # Generators abandoned inside an SDK are closed by asyncio's finalizer in short-lived
    # tasks; collect them and give those tasks a few loop turns to finish.
    gc.collect()
    for _ in range(20):
        await asyncio.sleep(0)
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    assert not leftover, f"tasks still running after {after}: {leftover}"
