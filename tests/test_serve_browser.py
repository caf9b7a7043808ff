"""The page of ``voxpipe serve`` in headless Chromium (Debian's ``chromium``, driven by
Playwright), against a real uvicorn on 127.0.0.1 with sim backends. The microphone is
Chromium's fake device playing a WAV made here: speech, then more speech while the agent
answers (a barge-in). Skipped, saying how to install it, when there is no Chromium.

``VOXPIPE_SCREENSHOT=docs/serve-page.png`` also saves the page's screenshot there."""

from __future__ import annotations

import os
import re
import shutil
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright
from tests import test_serve
from tests.test_serve import LONG_REPLY, SIM, Serve, silence

from voxpipe.serve.client import VoiceClient
from voxpipe.sim.voice import speech_like

serve = test_serve.serve  # the fixture: ``await serve(config, **limits)``, a real uvicorn


def find_chromium() -> str | None:
    if path := shutil.which("chromium"):
        return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium (neither `chromium` on PATH nor /usr/bin/chromium): the browser test "
    "needs Debian's chromium package: `make tools` (scripts/install-debian-tools.sh) as root, "
    "or `sudo apt-get install chromium`",
)

#: The fake microphone's file, ms: silence while the page connects, the user's question,
#: silence while the agent starts its long answer, the user speaking over it, silence.
MIC_RATE = 48_000
LEAD_MS, QUESTION_MS, GAP_MS, BARGE_IN_MS, TAIL_MS = 1_500, 2_000, 2_500, 600, 10_000
#: The long answer for the question, a short one for the barge-in ("[speech 0.6 s]").
CONFIG: dict[str, Any] = {
    **SIM,
    "llm": {**SIM["llm"], "responses": {"speech 0.": "Sure, I can help.", "default": LONG_REPLY}},
    "budgets": {
        "asr_finalization": 350,
        "llm_first_token": 50,  # the sim's first token takes 100 ms: missed
        "tts_first_chunk": 150,
        "time_to_first_audio": 800,
        "llm_token_generation": 30,
    },
}
TIMEOUT_MS = 20_000  # the longest wait for anything on the page
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def write_microphone(path: Path) -> Path:
    """The fake microphone's WAV: 48 kHz mono PCM16, the timeline above."""
    samples = np.concatenate(
        [
            silence(LEAD_MS, MIC_RATE),
            speech_like(QUESTION_MS, MIC_RATE),
            silence(GAP_MS, MIC_RATE),
            speech_like(BARGE_IN_MS, MIC_RATE, seed=1),
            silence(TAIL_MS, MIC_RATE),
        ]
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MIC_RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


class Browser:
    """A page in a fresh Chromium, with the console's errors and the page's exceptions."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def voxpipe(self, expression: str) -> Any:
        """``expression`` evaluated with ``v`` = the page's ``window.voxpipe``."""
        return await self.page.evaluate(
            f"(() => {{ const v = window.voxpipe; return {expression}; }})()"
        )

    async def wait(self, condition: str) -> None:
        """Until ``condition`` (JS, ``v`` = ``window.voxpipe``) holds, at most TIMEOUT_MS."""
        await self.page.wait_for_function(
            f"(() => {{ const v = window.voxpipe; return {condition}; }})()", timeout=TIMEOUT_MS
        )

    async def screenshot(self, tmp_path: Path) -> None:
        """The page as a test artefact, and where VOXPIPE_SCREENSHOT says."""
        paths = [tmp_path / "serve-page.png"]
        if os.environ.get("VOXPIPE_SCREENSHOT"):
            paths.append(Path(os.environ["VOXPIPE_SCREENSHOT"]))
        for path in paths:
            await self.page.screenshot(path=str(path), full_page=True)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    microphone = write_microphone(tmp_path / "microphone.wav")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={microphone}%noloop"],
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield Browser(context.pages[0] if context.pages else await context.new_page())
        finally:
            await context.close()


def pixels_of(colours: list[str]) -> str:
    """JS: for each of ``colours`` ("#rrggbb"), how many pixels of the newest turn's canvas
    have exactly that colour."""
    return f"""(() => {{
        const canvas = document.querySelector("canvas.turn");
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        const wanted = {colours!r}.map((hex) => parseInt(hex.slice(1), 16));
        const counts = wanted.map(() => 0);
        for (let i = 0; i < data.length; i += 4) {{
            const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
            const at = wanted.indexOf(rgb);
            if (at !== -1) counts[at] += 1;
        }}
        return counts;
    }})()"""


async def test_talking_to_the_agent_in_the_browser(
    serve: Serve, browser: Browser, tmp_path: Path
) -> None:
    served = await serve(CONFIG)
    page = browser.page
    await page.goto(served.http + "/")
    assert await page.title() == "voxpipe: talk to the agent"
    await page.click("#talk")
    await browser.wait("v.connection === 'live'")
    live_at = time.monotonic()
    ready = await browser.voxpipe("v.events[0]")
    rate = await browser.voxpipe("v.sampleRate")  # the page's AudioContext's
    assert ready["type"] == "ready"
    assert ready["sample_rate"] == ready["output_sample_rate"] == rate

    # the question: partial transcripts, then the final one, which the page shows
    await browser.wait("v.events.some((e) => e.type === 'transcript' && e.final)")
    heard = await browser.voxpipe("v.events.find((e) => e.type === 'transcript' && e.final).text")
    assert re.fullmatch(r"\[speech (1\.9|2\.0|2\.1) s\]", heard), heard
    assert await browser.voxpipe("v.events.some((e) => e.type === 'transcript' && !e.final)")
    assert await page.inner_text("#transcript .line.user .text") == heard

    # the long answer shows and plays
    await page.wait_for_selector("#transcript .line.agent .text:has-text('This answer goes on')")
    await browser.wait("v.playedSamples > 0.5 * v.sampleRate")

    # the user speaks over it: the server stops the answer, the page empties its queue
    await browser.wait("v.clears.length > 0")
    clears = await browser.voxpipe("v.clears")
    kinds = await browser.voxpipe("v.events.map((e) => e.type)")
    assert kinds.index("interruption") < kinds.index("clear")
    assert clears[0]["queued"] == 0 and clears[0]["dropped"] > 0, clears

    # both turns end and are drawn: the interrupted answer, then the short one
    await page.wait_for_selector("#transcript .line.agent .text:has-text('Sure, I can help.')")
    await browser.wait("v.drawnTurns === 2")
    turns = await browser.voxpipe("v.events.filter((e) => e.type === 'turn').map((e) => e.metrics)")
    assert [t["outcome"] for t in turns] == ["interrupted", "ok"]
    assert turns[0]["user_text"] == heard
    assert re.fullmatch(r"\[speech 0\.[5-7] s\]", turns[1]["user_text"])
    assert await page.locator("#transcript .line.agent.interrupted").count() == 1
    assert await page.locator("canvas.turn").count() == 2
    assert "llm_first_token" in await page.inner_text("#log")

    # the newest turn's timeline: its stages in their colours, budgets met and missed
    stages = ["#1f77b4", "#ff7f0e", "#9467bd"]  # asr_finalization, llm_ttft, tts_ttfb
    verdicts = ["#009e73", "#d55e00"]  # met, missed
    counts = await page.evaluate(pixels_of(stages + verdicts))
    assert all(count > 50 for count in counts), dict(zip(stages + verdicts, counts, strict=True))

    # stop: the session ends; the microphone streamed the whole time it was live
    await browser.screenshot(tmp_path)
    stopped_at = time.monotonic()
    await page.click("#talk")
    await browser.wait("v.connection === 'ended'")
    end = await browser.voxpipe("v.events.at(-1)")
    assert end["type"] == "end" and end["reason"] == "completed"
    sent_s = await browser.voxpipe("v.sentSamples") / rate
    assert sent_s == pytest.approx(stopped_at - live_at, abs=0.5)
    assert await page.inner_text("#talk") == "Talk"
    assert browser.errors == []


async def test_a_full_server_is_explained_on_the_page(serve: Serve, browser: Browser) -> None:
    served = await serve(CONFIG, max_sessions=1)
    other = await VoiceClient.connect(served.ws)
    await other.start(16_000)
    await browser.page.goto(served.http + "/")
    await browser.page.click("#talk")
    problem = browser.page.locator("#problem")
    await problem.wait_for(state="visible")
    assert await problem.inner_text() == (
        "The server refused the conversation: the server is full (1 sessions): try again."
    )
    assert await browser.voxpipe("v.connection") == "failed"
    assert await browser.page.inner_text("#talk") == "Talk"
    await other.aclose()
