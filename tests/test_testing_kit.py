"""The conformance kit fails backends that misbehave, not just passes good ones."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

FAKE_PROVIDER = '''
import asyncio
from contextlib import aclosing
from voxpipe.errors import ProviderError, RateLimited, AuthError
from voxpipe.testing import Failure, LLMContract, ServerControl

class FakeConnection:
    """A provider connection: sends two words, holds, then the rest; notes its closing."""
    def __init__(self, control, failure=None):
        self.control, self.failure = control, failure

    async def chunks(self):
        try:
            if self.failure is Failure.AUTH:
                raise AuthError("check FAKE_API_KEY", provider="fake", env_var="FAKE_API_KEY")
            if self.failure is Failure.RATE_LIMIT:
                raise RateLimited("slow down", provider="fake", retry_after=7)
            if self.failure is Failure.SERVER:
                raise ProviderError("fake: 500", provider="fake", retryable=True)
            if self.failure is Failure.MALFORMED:
                raise ProviderError("fake sent a payload without 'choices'", provider="fake")
            if self.failure is Failure.WRONG_CONTENT_TYPE:
                raise ProviderError("fake: the response is text/html", provider="fake")
            yield "Hello"
            yield " there"
            if self.failure is Failure.TRUNCATED:
                if self.passes_truncation_off:
                    return  # as if the reply were whole
                raise ProviderError("fake: the stream ended early", provider="fake", retryable=True)
            await self.control.hold()
            yield "."
        finally:
            self.control.mark_closed()

    passes_truncation_off = False

class Backend:
    def __init__(self, connection):
        self.connection = connection
    async def aclose(self):
        pass
'''

GOOD = (
    FAKE_PROVIDER
    + """
class StreamingLLM(Backend):
    async def stream(self, messages):
        async with aclosing(self.connection.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk

class TestGood(LLMContract):
    backend_name = "sim"
    distribution = "voxpipe"
    def make_backend(self, control, context):
        return StreamingLLM(FakeConnection(control))
    def make_failing_backend(self, failure, context):
        return StreamingLLM(FakeConnection(ServerControl(), failure))
"""
)

BUFFERING = (
    GOOD
    + """
class BufferingLLM(Backend):
    async def stream(self, messages):
        whole = [chunk async for chunk in self.connection.chunks()]
        for chunk in whole:
            yield chunk

class TestBuffering(TestGood):
    def make_backend(self, control, context):
        return BufferingLLM(FakeConnection(control))
"""
)

LEAKY = (
    GOOD
    + """
class LeakyLLM(Backend):
    open_responses = []
    async def stream(self, messages):
        chunks = self.connection.chunks()   # kept in a pool, never closed on an early stop
        self.open_responses.append(chunks)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            yield chunk

class TestLeaky(TestGood):
    def make_backend(self, control, context):
        return LeakyLLM(FakeConnection(control))
"""
)

TRUNCATION_AS_SUCCESS = (
    GOOD
    + """
class Careless(FakeConnection):
    passes_truncation_off = True

class TestCareless(TestGood):
    def make_failing_backend(self, failure, context):
        return StreamingLLM(Careless(ServerControl(), failure))
"""
)

TRUNCATION_NOT_RETRYABLE = (
    GOOD
    + """
class GivesUp(Backend):
    async def stream(self, messages):
        yield "Hello"
        raise ProviderError("fake: the stream ended early", provider="fake")

class TestGivesUp(TestGood):
    def make_failing_backend(self, failure, context):
        return GivesUp(None)
"""
)

WRONG_ERRORS = (
    GOOD
    + """
class KeyErrorLLM(Backend):
    async def stream(self, messages):
        raise KeyError("choices")
        yield ""

class TestWrongErrors(TestGood):
    def make_failing_backend(self, failure, context):
        return KeyErrorLLM(None)
"""
)

CHAT = (
    GOOD
    + """
from voxpipe.protocols import TextDelta, Usage

class ChatLLM(Backend):
    async def chat(self, messages):
        async with aclosing(self.connection.chunks()) as chunks:
            async for chunk in chunks:
                yield TextDelta(chunk)
        yield Usage(2, 3, 5)

class TestChat(TestGood):
    def make_backend(self, control, context):
        return ChatLLM(FakeConnection(control))
    def make_failing_backend(self, failure, context):
        return ChatLLM(FakeConnection(ServerControl(), failure))

class HalfMigratedLLM(Backend):
    async def chat(self, messages):  # renamed from stream(), still yields str
        async with aclosing(self.connection.chunks()) as chunks:
            async for chunk in chunks:
                yield chunk

class TestHalfMigrated(TestGood):
    def make_backend(self, control, context):
        return HalfMigratedLLM(FakeConnection(control))
"""
)

SIM_TTS = """
from voxpipe.protocols import Alignment
from voxpipe.sim import SimStreamTTS, SimTTS, SimTTSOptions
from voxpipe.testing import TTSContract

class SimTTSContract(TTSContract):
    backend_name = "sim"
    distribution = "voxpipe"
    failures = ()
    transport_closes = False
    emits_alignment = True
    tts = SimTTS
    def make_backend(self, control, context):
        return self.tts(SimTTSOptions(first_chunk_ms=30), context)
"""

WAITS_FOR_TEXT = (
    SIM_TTS
    + """
class WaitsForText(SimStreamTTS):
    async def synthesize_stream(self, text):
        whole = "".join([delta async for delta in text])
        async for item in self.synthesize(whole):
            yield item

class TestWaitsForText(SimTTSContract):
    backend_name = "sim-stream"
    tts = WaitsForText
"""
)

MISALIGNED = (
    SIM_TTS
    + """
class Misaligned(SimTTS):
    def spoil(self, a):
        return a
    async def synthesize(self, text):
        async for item in super().synthesize(text):
            if type(item) is not Alignment:
                yield item
            elif (spoilt := self.spoil(item)) is not None:
                yield spoilt

class NoSpaces(Misaligned):
    def spoil(self, a):
        return Alignment(a.text.strip(), a.start_ms, a.end_ms)

class InSamples(Misaligned):
    def spoil(self, a):
        return Alignment(a.text, a.start_ms * 16, a.end_ms * 16)

class Swapped(Misaligned):
    def spoil(self, a):
        return Alignment(a.text, a.end_ms, a.start_ms)

class Backwards(Misaligned):
    def spoil(self, a):
        return Alignment(a.text, 10_000 - a.end_ms, 10_000 - a.start_ms)

class Unaligned(Misaligned):
    def spoil(self, a):
        return None

class TestNoSpaces(SimTTSContract):
    tts = NoSpaces

class TestInSamples(SimTTSContract):
    tts = InSamples

class TestSwapped(SimTTSContract):
    tts = Swapped

class TestBackwards(SimTTSContract):
    tts = Backwards

class TestUnaligned(SimTTSContract):  # emits_alignment = True, but gives none
    tts = Unaligned
"""
)

PROVIDER_TTS = """
from contextlib import aclosing

import numpy as np

from voxpipe.audio import Framer
from voxpipe.testing import TTSContract

class FakeSpeech:
    \"\"\"A provider's speech stream, as a socket: one chunk at once, then held, then the
    rest; only aclose() closes it (reading it to the end or a cancelled read do not).\"\"\"
    def __init__(self, control):
        self.control, self.sent = control, 0
        control.mark_opened()
    def __aiter__(self):
        return self
    async def __anext__(self):
        if self.sent == 1:
            await self.control.hold()
        if self.sent == 5:
            raise StopAsyncIteration
        self.sent += 1
        return np.full(1600, 1000, dtype=np.int16)
    async def aclose(self):
        self.control.mark_closed()

async def speech(control):
    \"\"\"The same as an async generator mock: its finally reports the close.\"\"\"
    control.mark_opened()
    try:
        yield np.full(1600, 1000, dtype=np.int16)
        await control.hold()
        for _ in range(4):
            yield np.full(1600, 1000, dtype=np.int16)
    finally:
        control.mark_closed()

class ClosingTTS:
    def __init__(self, control, context):
        self.control, self.context = control, context
    def open(self, text):
        return FakeSpeech(self.control)
    async def synthesize(self, text):
        framer = Framer(self.context.sample_rate, self.context.frame_ms)
        async with aclosing(self.open(text)) as chunks:
            async for chunk in chunks:
                for frame in framer.push(chunk):
                    yield frame
        for frame in framer.flush():
            yield frame
    async def aclose(self):
        pass

class LeakyTTS(ClosingTTS):
    async def synthesize(self, text):  # reads the provider's stream, never closes it
        framer = Framer(self.context.sample_rate, self.context.frame_ms)
        async for chunk in self.open(text):
            for frame in framer.push(chunk):
                yield frame
        for frame in framer.flush():
            yield frame

class OnGenerator:
    def open(self, text):
        return speech(self.control)

class TestClosingTTS(TTSContract):
    backend_name = "sim"
    distribution = "voxpipe"
    failures = ()
    tts = ClosingTTS
    def make_backend(self, control, context):
        return self.tts(control, context)

class TestClosingGeneratorTTS(TestClosingTTS):
    tts = type("ClosingGeneratorTTS", (OnGenerator, ClosingTTS), {})

class TestLeakyTTS(TestClosingTTS):
    tts = LeakyTTS

class TestLeakyGeneratorTTS(TestClosingTTS):
    tts = type("LeakyGeneratorTTS", (OnGenerator, LeakyTTS), {})
"""

FAKE_ASR = """
from voxpipe.protocols import SpeechStarted, Transcript
from voxpipe.streams import Channel
from voxpipe.testing import ASRContract

class FakeStream:
    \"\"\"Push-based: a final for each speech_ended, the end after end_input; notes its
    connection's closing.\"\"\"
    def __init__(self, control):
        self.control, self.events = control, Channel()
    def push(self, frame):
        pass
    def speech_started(self, at_ms):
        self.events.put(SpeechStarted(at_ms))
    def speech_ended(self, utterance):
        self.events.put(Transcript("hello there how are you", True))
    def end_input(self):
        self.events.close()
    def __aiter__(self):
        return self._events()
    async def _events(self):
        try:
            async for event in self.events:
                yield event
        finally:
            self.control.mark_closed()
    async def aclose(self):
        self.events.close()
        self.control.mark_closed()

class FakeASR:
    stream = FakeStream
    def __init__(self, control):
        self.control = control
    def listen(self):
        return self.stream(self.control)
    async def aclose(self):
        pass

class V1ASR:
    \"\"\"Plugin API v1: transcribe(audio), endpointing on 200 ms of silence itself.\"\"\"
    def __init__(self, control):
        self.control = control
    async def transcribe(self, audio):
        try:
            voiced = silent = 0
            async for frame in audio:
                if frame.energy_db > -40:
                    voiced, silent = voiced + 1, 0
                elif voiced:
                    silent += 1
                    if silent == 10:
                        yield Transcript("hello there how are you", True)
                        voiced = 0
        finally:
            self.control.mark_closed()
    async def aclose(self):
        pass

class TestGoodASR(ASRContract):
    backend_name = "sim"
    distribution = "voxpipe"
    failures = ()
    asr = FakeASR
    def make_backend(self, control, context):
        return self.asr(control)

class TestV1ASR(TestGoodASR):
    asr = V1ASR

class Deaf(FakeStream):
    def speech_ended(self, utterance):
        pass  # waits for the end of the input to finalize

class DeafASR(FakeASR):
    stream = Deaf

class TestDeaf(TestGoodASR):
    asr = DeafASR

class Endless(FakeStream):
    def end_input(self):
        pass  # the events never end

class EndlessASR(FakeASR):
    stream = Endless

class TestEndless(TestGoodASR):
    asr = EndlessASR
"""

LATE_SINK = """
from voxpipe.io import NullSink
from voxpipe.testing import SinkContract

class LateSink(NullSink):
    def clear(self, at_ms):
        return at_ms + 100  # plays out what it had queued

class TestLateSink(SinkContract):
    def make_sink(self, sample_rate):
        return LateSink()
"""


def run(pytester: pytest.Pytester, source: str, selector: str) -> pytest.RunResult:
    pytester.makepyfile(test_plugin=source)
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", selector)


def test_a_well_behaved_backend_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, GOOD, "TestGood and not plugins")
    result.assert_outcomes(passed=13, skipped=1)  # no key: the missing-key check is skipped


def test_a_backend_that_buffers_the_response_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, BUFFERING, "TestBuffering and first_output")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*waits for the whole response instead of streaming it*"])


def test_a_backend_that_leaves_the_connection_open_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, LEAKY, "TestLeaky and stopping_mid_stream and aclose")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*left open after the stream ended early*"])


def test_a_backend_leaking_provider_exceptions_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, WRONG_ERRORS, "TestWrongErrors and provider_errors")
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(["*raised KeyError('choices'): map provider failures to*"])


def test_a_backend_that_passes_a_truncated_stream_off_as_whole_fails(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, TRUNCATION_AS_SUCCESS, "TestCareless and provider_errors")
    result.assert_outcomes(failed=1, passed=5)
    result.stdout.fnmatch_lines(
        ["*the truncated response passed as success (the stream gave TextDelta, TextDelta*"]
    )


def test_a_truncated_stream_must_be_retryable(pytester: pytest.Pytester) -> None:
    result = run(pytester, TRUNCATION_NOT_RETRYABLE, "TestGivesUp and provider_errors")
    # AUTH, RATE_LIMIT and SERVER want their own types; MALFORMED and WRONG_CONTENT_TYPE
    # pass (not retryable); TRUNCATED wants retryable=True.
    result.assert_outcomes(failed=4, passed=2)
    result.stdout.fnmatch_lines(["*a truncated stream is retryable (retryable=True)*"])


def test_a_v2_llm_passes_and_one_yielding_str_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, CHAT, "TestChat and not plugins")
    result.assert_outcomes(passed=13, skipped=1)
    result = run(pytester, CHAT, "TestHalfMigrated and first_output")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*chat() yields TextDelta, Usage, ToolCall or Finish*got str*"])


def test_a_streaming_tts_that_waits_for_the_end_of_its_text_fails(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, WAITS_FOR_TEXT, "streamed_text_is_spoken")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*must speak what it has without waiting for the end of the text*"]
    )


def test_inconsistent_alignment_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, MISALIGNED, "alignment_matches")
    result.assert_outcomes(failed=5, skipped=5)  # none streams: the streamed check skips
    result.stdout.fnmatch_lines_random(
        [
            "*the Alignment pieces joined give 'Hellothere.HowcanIhelpyoutoday?', not the text*",
            "*ends past the 3200 ms of audio the stream gave*",
            "*ends before it starts*",
            "*starts before the piece before it*",
            "*emits_alignment = True but no Alignment came*",
        ]
    )


def test_ttss_that_close_their_provider_streams_pass(pytester: pytest.Pytester) -> None:
    source = PROVIDER_TTS + SIM_TTS + "\nclass TestSimTTS(SimTTSContract): pass\n"
    result = run(pytester, source, "(TestClosing or TestSimTTS) and not plugins")
    assert result.ret == pytest.ExitCode.OK
    # Per-phrase TTSs without provider failures: the streamed and the error tests skip.
    result.assert_outcomes(passed=31, skipped=35)


def test_a_tts_that_never_closes_its_provider_stream_fails(pytester: pytest.Pytester) -> None:
    selected = "TestLeakyTTS and (first_output or stopping_mid_stream or session_rate)"
    result = run(pytester, PROVIDER_TTS, selected)
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines_random(
        [
            "*a provider stream the backend opened was still open right after the stream "
            "ended (1 of 1 open): close it yourself*",
            "*still open right after aclose() of the stream*",
            "*still open right after the cancellation of its consumer*",
        ]
    )


def test_a_provider_generator_left_to_the_garbage_collector_fails(
    pytester: pytest.Pytester,
) -> None:
    """asyncio closes an abandoned async generator in a task of its own, once the loop runs:
    the kit checks before it does. (A cancellation or the end of the stream goes through the
    mock's generator itself and runs its finally: only aclose() can tell.)"""
    result = run(pytester, PROVIDER_TTS, "TestLeakyGeneratorTTS and stopping_mid and aclose")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*still open right after aclose() of the stream*"])


@pytest.mark.skipif(find_spec("voxpipe_tone") is None, reason="needs examples/voxpipe-tone")
def test_the_tone_example_passes_outside_the_repository(pytester: pytest.Pytester) -> None:
    """Its tests, copied where no voxpipe configuration is (pytester's directory)."""
    tests = Path(__file__).parents[1] / "examples" / "voxpipe-tone" / "tests" / "test_tone.py"
    pytester.makepyfile(test_tone=tests.read_text())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_push_based_and_v1_asrs_pass(pytester: pytest.Pytester) -> None:
    result = run(pytester, FAKE_ASR, "(TestGoodASR or TestV1ASR) and not plugins")
    result.assert_outcomes(passed=16, skipped=14)  # no provider to fail, no key


def test_an_asr_that_never_answers_speech_ended_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, FAKE_ASR, "TestDeaf and (first_output or end_input)")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*finalize the utterance when speech_ended(utterance) is called*"])


def test_an_asr_whose_events_never_end_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, FAKE_ASR, "TestEndless and (first_output or end_input)")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*the events did not end within 10 s after end_input()*"])


def test_a_sink_whose_clear_returns_too_late_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, LATE_SINK, "TestLateSink")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(["*clear(250.0) returned 350.0: return the session time*"])
