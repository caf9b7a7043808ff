"""How long building OpenAI backends blocks the event loop: 50 sessions' worth (an ASR, an
LLM and a TTS each), built inside a running loop, as a server builds them per connection.

    OPENAI_API_KEY=any .venv/bin/python plugins/voxpipe-openai/scripts/build_cost.py

No request is made. Prints the loop time the constructors took (they are synchronous: the
loop does nothing else meanwhile), in total, per session and for the slowest session.
"""

from __future__ import annotations

import asyncio
import os
import time

from voxpipe_openai import (
    OpenAIASR,
    OpenAIASROptions,
    OpenAILLM,
    OpenAILLMOptions,
    OpenAITTS,
    OpenAITTSOptions,
)

SESSIONS = 50


async def main() -> None:
    os.environ.setdefault("OPENAI_API_KEY", "sk-not-used")
    built = []
    per_session = []
    for _ in range(SESSIONS):
        start = time.perf_counter()
        built += [
            OpenAIASR(OpenAIASROptions()),
            OpenAILLM(OpenAILLMOptions()),
            OpenAITTS(OpenAITTSOptions()),
        ]
        per_session.append(time.perf_counter() - start)
    total = sum(per_session)
    print(
        f"{SESSIONS} sessions x 3 backends: the loop was blocked {total * 1000:.1f} ms in all; "
        f"first session {per_session[0] * 1000:.1f} ms, the others "
        f"{sum(per_session[1:]) / (SESSIONS - 1) * 1000:.2f} ms on average, "
        f"slowest {max(per_session) * 1000:.1f} ms"
    )
    for backend in built:
        await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
