"""``voxpipe serve`` against a real WebSocket client: a real uvicorn on 127.0.0.1 (an
ephemeral port, in the test's loop), real time, sim backends. Every wait is bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from voxpipe.audio import Int16Array
from voxpipe.config import parse_config
from voxpipe.serve import DrainingServer, Limits, VoiceServer, bind
from voxpipe.serve.client import VoiceClient
from voxpipe.sim.voice import speech_like

#: Sim backends, quick: the final 50 ms after the 200 ms endpoint, the first token 100 ms
#: later, first audio 50 ms after the first phrase; a tight llm_first_token budget (warn).
SIM: dict[str, Any] = {
    "asr": {"backend": "sim", "finalization_ms": 50},
    "llm": {
        "backend": "sim",
        "first_token_ms": 100,
        "tokens_per_second": 50,
        "responses": {"default": "Sure, I can help."},
    },
    "tts": {"backend": "sim", "first_chunk_ms": 50, "speed": 4.0},
    "turns": {"endpoint_ms": 200},
    "budgets": {"llm_first_token": 50},
}
LONG_REPLY = " ".join(["This answer goes on for a good while."] * 4)
REPLY_MS = 4 * 60_000 / 150  # "Sure, I can help." at 150 words per minute


def utterance(speech_ms: float, rate: int, *, lead_ms: float = 300, tail_ms: float = 600) -> Any:
    """Silence, speech-like sound, silence: what the user says."""
    return np.concatenate(
        [
            np.zeros(round(rate * lead_ms / 1000), dtype=np.int16),
            speech_like(speech_ms, rate),
            np.zeros(round(rate * tail_ms / 1000), dtype=np.int16),
        ]
    )


def silence(ms: float, rate: int) -> Int16Array:
    return np.zeros(round(rate * ms / 1000), dtype=np.int16)


@dataclass
class Served:
    voice: VoiceServer
    server: DrainingServer
    http: str

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://") + "/ws"

    async def get(self, path: str) -> tuple[int, str]:
        def fetch() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(self.http + path, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        return await asyncio.to_thread(fetch)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """/metrics parsed: (sample name, sorted labels) -> value."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(config=None, **limits)``: a server on 127.0.0.1:0 in this loop."""
    running: list[tuple[DrainingServer, asyncio.Task[None]]] = []

    async def start(config: dict[str, Any] | None = None, **limits: Any) -> Served:
        voice = VoiceServer(parse_config(config or SIM), Limits(**limits))
        sock = bind("127.0.0.1", 0)
        server = DrainingServer(voice, handle_signals=False)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        running.append((server, task))
        return Served(voice, server, await server.started_on(sock))

    yield start
    for server, task in running:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def converse(
    client: VoiceClient, speech_ms: float, rate: int, *, then_ms: float = 2_500
) -> None:
    """Say something, stay silent while the agent answers, then stop."""
    await client.stream(utterance(speech_ms, rate), rate)
    await client.stream(silence(then_ms, rate), rate)
    await client.send({"type": "stop"})


@pytest.mark.parametrize(("rate", "output_rate"), [(48_000, None), (8_000, 24_000)])
async def test_a_turn_over_the_socket(serve: Serve, rate: int, output_rate: int | None) -> None:
    served = await serve()
    client = await VoiceClient.connect(served.ws)
    ready = await client.start(rate, output_rate)
    out = output_rate or rate
    assert ready["sample_rate"] == rate
    assert ready["output_sample_rate"] == out
    assert ready["session_sample_rate"] == 16_000 and ready["frame_ms"] == 20
    assert ready["backends"]["llm"] == "sim"

    loop = asyncio.get_running_loop()
    await client.stream(utterance(1_200, rate, tail_ms=0), rate)
    speech_sent = loop.time()  # the last of the speech has gone out
    await client.stream(silence(2_500, rate), rate)
    await client.send({"type": "stop"})
    end = await client.next("end")
    await client.wait_closed()

    kinds = [e["type"] for e in client.events]
    assert kinds[0] == "ready" and kinds[-1] == "end"
    final = await client.next("transcript", final=True)
    assert final["text"] == "[speech 1.2 s]"  # PCM carries no script: the sim hears a length
    assert await client.next("transcript", final=False)
    states = [e["state"] for e in client.events if e["type"] == "state"]
    assert states == ["processing_speech", "thinking", "speaking", "listening"]
    said = [e["text"].strip() for e in client.events if e["type"] == "agent_text"]
    assert said[-1] == "Sure, I can help."  # growing as the LLM wrote it, each the whole so far
    assert all(b.startswith(a) for a, b in itertools.pairwise(said))
    budget = await client.next("budget")
    assert (budget["name"], budget["action"], budget["turn"]) == ("llm_first_token", "warn", 1)

    metrics = (await client.next("turn"))["metrics"]
    assert metrics["user_text"] == "[speech 1.2 s]"
    assert metrics["agent_text"] == "Sure, I can help." == metrics["heard_text"]
    assert metrics["outcome"] == "ok"
    stamps, ttfa = metrics["timestamps_ms"], metrics["latency_ms"]["time_to_first_audio"]
    # each figure is rounded to 1 µs on the wire, so a difference of two is within 2 µs
    assert ttfa == pytest.approx(stamps["playout_start"] - stamps["speech_end"], abs=2e-3)
    assert sum(metrics["stages_ms"].values()) == pytest.approx(ttfa, abs=1e-2)
    # the audio that came is the answer, at the output rate, as long as it played
    played_ms = stamps["turn_end"] - stamps["playout_start"]
    assert len(client.audio) / 2 == pytest.approx(played_ms * out / 1000, rel=0.02)
    assert played_ms == pytest.approx(REPLY_MS, abs=40)
    assert np.abs(np.frombuffer(client.audio, "<i2")).max() > 1_000
    # what the client waited for is what the server reports, give or take the network
    first_audio = client.audio_times[0][0]
    heard_ms = (first_audio - speech_sent) * 1000
    assert ttfa - 30 <= heard_ms <= ttfa + 250
    assert end["reason"] == "completed" and end["session"]["outcomes"]["ok"] == 1
    assert client.close_code == 1000


async def test_bad_messages_each_get_an_error_and_the_session_goes_on(serve: Serve) -> None:
    served = await serve(max_errors=20)
    client = await VoiceClient.connect(served.ws)
    bad: list[tuple[str | bytes | dict[str, Any], str]] = [
        (b"\0\0" * 320, "not_started"),
        ("hello", "not_json"),
        ("[1, 2]", "not_json"),
        ({"type": "dance"}, "unknown_type"),
        ({"sample_rate": 16_000}, "unknown_type"),
        ({"type": "start", "sample_rate": 96_000}, "bad_sample_rate"),
        ({"type": "start", "sample_rate": "48000"}, "bad_sample_rate"),
        ({"type": "start", "sample_rate": 16_000, "output_sample_rate": 4_000}, "bad_sample_rate"),
        ({"type": "start", "sample_rate": 16_000, "channels": 2}, "bad_message"),
        ({"type": "stop"}, "not_started"),
    ]
    for message, code in bad:
        count = len(client.events)
        await client.send(message)
        error = await client.next("error", after=count)
        assert error["code"] == code, (message, error)
        assert error["message"]
    await client.start(16_000)
    after_start: list[tuple[str | bytes | dict[str, Any], str]] = [
        ({"type": "start", "sample_rate": 16_000}, "already_started"),
        (b"\0\0" * 16_001, "frame_too_large"),  # just over a second at 16 kHz
    ]
    for message, code in after_start:
        count = len(client.events)
        await client.send(message)
        assert (await client.next("error", after=count))["code"] == code
    count = len(client.events)
    second = silence(1_000, 16_000).tobytes()
    for _ in range(3):  # three seconds at once: faster than real time
        await client.send(second)
    assert (await client.next("error", after=count))["code"] == "too_fast"
    await client.send({"type": "stop"})
    count = len(client.events)
    await client.send(b"\0\0" * 320)
    assert (await client.next("error", after=count))["code"] == "audio_after_stop"
    end = await client.next("end")
    assert end["reason"] == "completed"
    await client.wait_closed()
    assert client.close_code == 1000
    status, body = await served.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


async def test_repeated_bad_messages_close_with_1008_and_other_sessions_go_on(
    serve: Serve,
) -> None:
    served = await serve()  # max_errors 3
    good = await VoiceClient.connect(served.ws)
    await good.start(16_000)
    talking = asyncio.create_task(converse(good, 1_200, 16_000))
    bad = await VoiceClient.connect(served.ws)
    await bad.start(16_000)
    for message in ("nonsense", {"type": "dance"}, {"type": "start", "sample_rate": 16_000}):
        await bad.send(message)
    end = await bad.next("end")
    await bad.wait_closed()
    assert [e["code"] for e in bad.events if e["type"] == "error"] == [
        "not_json",
        "unknown_type",
        "already_started",
    ]
    assert end["reason"] == "protocol_errors"
    assert bad.close_code == 1008
    assert bad.close_reason == "3 bad messages (the last: already_started)"

    await asyncio.wait_for(talking, 15)
    assert (await good.next("turn"))["metrics"]["outcome"] == "ok"
    assert (await good.next("end"))["reason"] == "completed"
    assert not [e for e in good.events if e["type"] == "error"]


async def test_a_connection_over_max_sessions_is_refused_with_a_reason(serve: Serve) -> None:
    served = await serve(max_sessions=1)
    first = await VoiceClient.connect(served.ws)
    await first.start(16_000)
    status, body = await served.get("/readyz")
    assert status == 503 and json.loads(body)["status"] == "full"

    extra = await VoiceClient.connect(served.ws)
    await extra.wait_closed()
    assert extra.close_code == 1013
    assert extra.close_reason == "the server is full (1 sessions): try again"
    assert [e["type"] for e in extra.events] == ["error"]
    assert extra.events[0]["code"] == "refused"

    await first.send({"type": "stop"})
    await first.wait_closed()
    status, body = await served.get("/readyz")
    assert status == 200 and json.loads(body) == {
        "status": "ready",
        "sessions": 0,
        "max_sessions": 1,
    }
    refused = {k: v for k, v in (await served.metrics()).items() if k[0].endswith("refused_total")}
    assert refused == {("voxpipe_sessions_refused_total", (("reason", "full"),)): 1.0}


@pytest.mark.parametrize("started", [False, True])
async def test_a_client_that_sends_nothing_is_closed_at_the_idle_timeout(
    serve: Serve, started: bool
) -> None:
    served = await serve(idle_timeout_s=0.5)
    client = await VoiceClient.connect(served.ws)
    loop = asyncio.get_running_loop()
    began = loop.time()
    if started:
        await client.start(16_000)
        await client.stream(silence(300, 16_000), 16_000)  # messages keep it alive...
        began = loop.time()
    await client.wait_closed(5)  # ...then nothing
    assert 0.45 <= loop.time() - began <= 2.0
    end = client.events[-1]
    assert end["type"] == "end" and end["reason"] == "idle_timeout"
    assert client.close_code == 1000 and "no message" in (client.close_reason or "")


async def test_a_session_is_closed_at_its_max_length(serve: Serve) -> None:
    served = await serve(max_session_s=1.0)
    client = await VoiceClient.connect(served.ws)
    await client.start(16_000)
    streaming = asyncio.create_task(client.stream(silence(5_000, 16_000), 16_000))
    await client.wait_closed(5)
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    end = client.events[-1]
    assert end["type"] == "end" and end["reason"] == "max_length"
    assert end["session"]["ended"]["reason"] == "cancelled"
    assert client.close_code == 1000


async def test_two_sessions_at_once_each_hear_only_their_own_user(serve: Serve) -> None:
    served = await serve()
    a, b = await VoiceClient.connect(served.ws), await VoiceClient.connect(served.ws)
    ready_a, ready_b = await a.start(48_000), await b.start(16_000)
    assert ready_a["session_id"] != ready_b["session_id"]
    status, body = await served.get("/readyz")
    assert status == 200 and json.loads(body)["sessions"] == 2
    await asyncio.wait_for(asyncio.gather(converse(a, 800, 48_000), converse(b, 2_000, 16_000)), 20)
    for client, heard in ((a, "[speech 0.8 s]"), (b, "[speech 2.0 s]")):
        finals = [e["text"] for e in client.events if e["type"] == "transcript" and e["final"]]
        assert finals == [heard]
        turns = [e["metrics"] for e in client.events if e["type"] == "turn"]
        assert [t["user_text"] for t in turns] == [heard]
        assert (await client.next("end"))["reason"] == "completed"


async def test_health_readiness_and_metrics(serve: Serve) -> None:
    served = await serve()
    client = await VoiceClient.connect(served.ws)
    await client.start(16_000)
    assert (await served.metrics())[("voxpipe_active_sessions", ())] == 1.0
    await converse(client, 1_000, 16_000)
    await client.next("end")
    await client.wait_closed()
    turn = (await client.next("turn"))["metrics"]

    assert await served.get("/healthz") == (200, '{"status":"ok"}')
    status, body = await served.get("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    samples = await served.metrics()
    backends = (("asr", "sim"), ("llm", "sim"), ("tts", "sim"))
    assert samples[("voxpipe_active_sessions", ())] == 0.0
    assert samples[("voxpipe_sessions_ended_total", (("reason", "completed"),))] == 1.0
    assert samples[("voxpipe_turns_total", (("outcome", "ok"),))] == 1.0
    assert samples[("voxpipe_time_to_first_audio_seconds_count", backends)] == 1.0
    assert samples[("voxpipe_time_to_first_audio_seconds_sum", backends)] == pytest.approx(
        turn["latency_ms"]["time_to_first_audio"] / 1000, abs=1e-6
    )
    assert (
        samples[
            ("voxpipe_budget_actions_total", (("action", "warn"), ("budget", "llm_first_token")))
        ]
        == 1.0
    )


async def test_speaking_over_the_agent_stops_its_audio(serve: Serve) -> None:
    config = {**SIM, "llm": {**SIM["llm"], "responses": {"default": LONG_REPLY}}}
    served = await serve(config)
    client = await VoiceClient.connect(served.ws)
    await client.start(48_000)
    await client.stream(utterance(1_000, 48_000, tail_ms=0), 48_000)
    streaming = asyncio.create_task(client.stream(silence(20_000, 48_000), 48_000))
    speaking = await client.next("state", state="speaking", timeout_s=5)
    await asyncio.sleep(1.0)  # a second into the answer...
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    await client.stream(utterance(1_000, 48_000, lead_ms=0), 48_000)  # ...the user talks
    await client.stream(silence(1_500, 48_000), 48_000)
    await client.send({"type": "stop"})
    await client.next("end", timeout_s=20)

    interruption = await client.next("interruption")
    assert interruption["turn"] == 1
    cleared = client.events.index(await client.next("clear"))
    assert client.events[cleared]["at_ms"] == pytest.approx(interruption["silent_ms"], abs=1e-3)
    answer = client.events.index(await client.next("state", state="speaking", after=cleared))
    # nothing of the cut answer after the clear: no audio until the next answer speaks
    assert client.audio_before[answer] == client.audio_before[cleared]
    first = (await client.next("turn"))["metrics"]
    assert first["interrupted"] and first["outcome"] == "interrupted"
    assert first["heard_text"] and len(first["heard_text"]) < len(first["agent_text"])
    played_ms = interruption["silent_ms"] - speaking["at_ms"]
    assert client.audio_before[cleared] / 2 == pytest.approx(played_ms * 48, abs=48 * 60)


async def test_a_client_that_leaves_mid_answer_leaves_nothing_running(serve: Serve) -> None:
    config = {**SIM, "llm": {**SIM["llm"], "responses": {"default": LONG_REPLY}}}
    served = await serve(config)
    idle = asyncio.all_tasks()
    client = await VoiceClient.connect(served.ws)
    await client.start(16_000)
    streaming = asyncio.create_task(client.stream(utterance(1_000, 16_000, tail_ms=10_000), 16_000))
    await client.next("state", state="speaking", timeout_s=5)
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    client.websocket.transport.abort()  # gone without a close frame
    await client.wait_closed()

    async with asyncio.timeout(2):
        while served.voice.connections or asyncio.all_tasks() - idle - {asyncio.current_task()}:
            await asyncio.sleep(0.05)
    samples = await served.metrics()
    assert samples[("voxpipe_active_sessions", ())] == 0.0
    assert samples[("voxpipe_sessions_ended_total", (("reason", "client_left"),))] == 1.0
