"""The tutorial's run_demo(), through voxpipe's Python API.

python examples/tutorial_demo.py
"""

import asyncio

from voxpipe import DEMO_BUDGETS, SimSpeechSource, VoiceAgent
from voxpipe.report import print_session


async def run_demo() -> None:
    agent = VoiceAgent.from_config({"budgets": DEMO_BUDGETS.model_dump(exclude_none=True)})
    agent.on("transcript", lambda t: t.is_final and print(f"user:  {t.text}"))
    agent.on("turn", lambda turn: print(f"agent: {turn.agent_text}"))
    lines = ["Hello, how are you today?", "What's the weather like?", "Can you tell me the time?"]
    async with agent:
        session = await agent.run(SimSpeechSource(lines))
    print_session(session)


if __name__ == "__main__":
    asyncio.run(run_demo())
