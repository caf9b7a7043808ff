"""Pre-recorded ``POST /v1/listen`` (``deepgram-rest``) against respx: what is uploaded (the
utterance the session's VAD cut, as a WAV, with its query and key), Deepgram's answer as a
final transcript, and its error bodies as voxpipe errors naming Deepgram's message."""

from __future__ import annotations

import asyncio
import io
import json
import wave

import httpx
import pytest
import respx
from deepgram_wire import LISTEN, REQUEST_ID, answer_json, error, pieces, route
from dg import KEY, RATE, finals, hear, talk

from voxpipe.errors import AuthError, ProviderError, RateLimited
from voxpipe_deepgram import DeepgramRESTASR, DeepgramRESTASROptions
from voxpipe_deepgram._transcripts import heard

pytestmark = pytest.mark.looptime
JSON = {"content-type": "application/json"}


def rest(**options: object) -> DeepgramRESTASR:
    return DeepgramRESTASR(DeepgramRESTASROptions.model_validate(options))


async def transcribe(backend: DeepgramRESTASR, *parts: tuple[str, float]) -> list[object]:
    try:
        return await hear(backend.listen(), talk(*parts), speed=1.0, within_s=30)
    finally:
        await backend.aclose()


async def test_the_utterance_is_uploaded_as_a_wav_and_comes_back_final(wire: respx.Router) -> None:
    calls = route(wire, LISTEN, pieces(answer_json("Hello there."), 50), headers=JSON)
    events = await transcribe(
        rest(language="en"), ("silence", 500), ("speech", 1000), ("silence", 500)
    )
    (final,) = finals(events)
    assert final.text == "Hello there." and final.confidence == pytest.approx(0.98)
    assert final.endpoint_ms == 1700.0  # the VAD's decision: 1500 + its 200 ms window
    (call,) = calls.calls
    request = call.request
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["content-type"] == "audio/wav"
    assert dict(request.url.params) == {
        "model": "nova-3",
        "smart_format": "true",
        "punctuate": "true",
        "language": "en",
    }
    with wave.open(io.BytesIO(request.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        # 200 ms before the speech to 200 ms after it: 1400 ms.
        assert wav.getnframes() == RATE * 1400 // 1000


async def test_utterances_are_transcribed_in_order(wire: respx.Router) -> None:
    answers = iter([answer_json("First."), answer_json("Second.")])

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=JSON, content=next(answers))

    wire.post(LISTEN).mock(side_effect=respond)
    events = await transcribe(
        rest(),
        ("silence", 300),
        ("speech", 600),
        ("silence", 600),
        ("speech", 600),
        ("silence", 400),
    )
    assert [f.text for f in finals(events)] == ["First.", "Second."]


async def test_speech_longer_than_max_utterance_ms_is_uploaded_in_parts(wire: respx.Router) -> None:
    calls = route(wire, LISTEN, [answer_json("Part.")], headers=JSON)
    events = await transcribe(
        rest(max_utterance_ms=1000), ("silence", 300), ("speech", 2500), ("silence", 400)
    )
    assert [f.text for f in finals(events)] == ["Part."] * 3
    lengths = [len(c.request.content) for c in calls.calls]
    assert max(lengths) <= 44 + 2 * RATE  # never more than a second (and a header) at once
    assert [f.endpoint_ms for f in finals(events)][:2] == [None, None]  # cut, not ended


@pytest.mark.parametrize(
    ("status", "kind", "words", "retryable"),
    [
        (400, ProviderError, ["HTTP 400", "Bad Request: failed to process audio"], False),
        (
            401,
            AuthError,
            ["rejected the API key", "Invalid credentials", "DEEPGRAM_API_KEY"],
            False,
        ),
        (402, ProviderError, ["HTTP 402", "not have enough credits"], False),
        (429, RateLimited, ["HTTP 429", "Too many requests", "retry after 2 s"], True),
        (503, ProviderError, ["HTTP 503", "temporarily unavailable"], True),
    ],
)
async def test_error_bodies_become_voxpipe_errors(
    wire: respx.Router, status: int, kind: type, words: list[str], retryable: bool
) -> None:
    error(wire, LISTEN, status, **({"retry-after": "2"} if status == 429 else {}))
    with pytest.raises(ProviderError) as info:
        await transcribe(rest(), ("silence", 300), ("speech", 500), ("silence", 300))
    failure = info.value
    assert type(failure) is kind and failure.retryable is retryable
    for word in [*words, f"request id {REQUEST_ID}"]:
        assert word in str(failure), str(failure)
    assert KEY not in str(failure)
    if isinstance(failure, RateLimited):
        assert failure.retry_after == 2


async def test_a_404_points_at_base_url(wire: respx.Router) -> None:
    error(wire, "https://dg.example.com/v1/v1/listen", 404)
    with pytest.raises(ProviderError, match="check base_url: the server's root"):
        await transcribe(
            rest(base_url="https://dg.example.com/v1"), ("speech", 400), ("silence", 300)
        )


@pytest.mark.parametrize(
    ("body", "headers", "problem", "retryable"),
    [
        (
            b"<html><body>Bad gateway</body></html>",
            {"content-type": "text/html"},
            "the answer is text/html, not JSON",
            False,
        ),
        (b'{"results": {"channels": []}}', JSON, "without results.channels[0].alternatives", False),
        (b"not json at all", JSON, "JSON that does not parse", False),
        (answer_json()[:90], JSON, "cut short (90 bytes of JSON, unclosed)", True),
    ],
)
async def test_answers_that_are_not_a_transcript_are_errors(
    wire: respx.Router, body: bytes, headers: dict[str, str], problem: str, retryable: bool
) -> None:
    route(wire, LISTEN, pieces(body, 30), headers=headers)
    with pytest.raises(ProviderError) as info:
        await transcribe(rest(), ("silence", 300), ("speech", 500), ("silence", 300))
    assert problem in str(info.value) and info.value.retryable is retryable


async def test_a_server_that_never_answers_times_out(wire: respx.Router) -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    wire.post(LISTEN).mock(side_effect=never)
    loop = asyncio.get_running_loop()
    with pytest.raises(ProviderError, match="no answer within 800 ms of the request") as info:
        await transcribe(rest(first_byte_timeout_ms=800), ("speech", 500), ("silence", 300))
    assert info.value.retryable
    # The upload starts at the VAD's end (700 ms); the error 800 ms later, not an hour.
    assert loop.time() == pytest.approx(1.5, abs=0.05)


def test_words_are_timed_from_the_clip_start_on_the_session_clock() -> None:
    # Deepgram times words from the clip's first sample: a clip cut at 2300 ms.
    body = json.loads(answer_json("One two.", 1.0))
    alternatives = body["results"]["channels"][0]["alternatives"]
    got = heard(alternatives, lambda s: 2_300.0 + s * 1000, "transcription")
    assert [w.text for w in got.words] == ["One", "two."]  # punctuated_word, as transcribed
    first = alternatives[0]["words"][0]
    assert got.words[0].start_ms == pytest.approx(2_300 + first["start"] * 1000)
    assert got.words[0].end_ms == pytest.approx(2_300 + first["end"] * 1000)
    assert got.words[0].confidence == pytest.approx(0.99)
