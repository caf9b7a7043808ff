"""OpenAI backends for voxpipe: ``[llm]``, ``[tts]`` and ``[asr]`` with ``backend = "openai"``.

The key comes from ``OPENAI_API_KEY`` only; ``base_url`` points any of them at an
OpenAI-compatible server.
"""

from voxpipe_openai.asr import OpenAIASR, OpenAIASROptions
from voxpipe_openai.llm import OpenAILLM, OpenAILLMOptions
from voxpipe_openai.tts import OpenAITTS, OpenAITTSOptions

__version__ = "0.1.0"

__all__ = [
    "OpenAIASR",
    "OpenAIASROptions",
    "OpenAILLM",
    "OpenAILLMOptions",
    "OpenAITTS",
    "OpenAITTSOptions",
]
