"""Time to first audio on the demo scenario: voxpipe's streaming overlap against the serial
design it replaces (whole LLM reply before TTS), both measured from the end of the user's
speech, plus what a clock started at the ASR result would have reported for the serial one.

    python examples/compare_serial.py             # virtual time: instant and exact
    python examples/compare_serial.py --real-time # the same on the wall clock (~40 s)
"""

import argparse
import asyncio

import looptime
from rich.console import Console
from rich.table import Table

from voxpipe import SessionMetrics, SimSpeechSource, VoiceAgent

LINES = ["Hello, how are you today?", "What's the weather like?", "Can you tell me the time?"]


async def demo(stream: bool) -> SessionMetrics:
    agent = VoiceAgent.from_config({"agent": {"phrases": {"stream": stream}}})
    async with agent:
        return await agent.run(SimSpeechSource(LINES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-time", action="store_true", help="run on the wall clock")
    args = parser.parse_args()
    factory = None if args.real_time else looptime.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        streaming, serial = runner.run(demo(True)), runner.run(demo(False))

    table = Table(title="Time to first audio, ms (demo scenario, sim backends)")
    for column in ("turn", "voxpipe (streaming)", "serial", "serial, clock from ASR final"):
        table.add_column(column, justify="right")
    for fast, slow in zip(streaming.turns, serial.turns, strict=True):
        from_final = slow.stamps["playout_start"] - slow.stamps["asr_final"]
        table.add_row(
            f"{fast.index}: {fast.user_text}",
            f"{fast.latency('time_to_first_audio'):.0f}",
            f"{slow.latency('time_to_first_audio'):.0f}",
            f"{from_final:.0f}",
        )
    p50 = [s.summary()["time_to_first_audio_ms"]["p50"] for s in (streaming, serial)]
    table.add_row("p50", f"{p50[0]:.0f}", f"{p50[1]:.0f}", "")
    Console().print(table)


if __name__ == "__main__":
    main()
