"""ElevenLabs TTS backends for voxpipe: ``[tts] backend = "elevenlabs"`` (HTTP streaming, one
request per phrase) and ``backend = "elevenlabs-ws"`` (stream-input: one WebSocket per reply,
fed with the LLM's text as it is written, with character timings).

The key comes from ``ELEVENLABS_API_KEY`` only; ``base_url`` points either at a regional
endpoint, a proxy or ``voxpipe_elevenlabs.testing.FakeElevenLabs``.
"""

from voxpipe_elevenlabs.stream import ElevenLabsStreamOptions, ElevenLabsStreamTTS
from voxpipe_elevenlabs.tts import ElevenLabsTTS, ElevenLabsTTSOptions

__version__ = "0.1.0"

__all__ = [
    "ElevenLabsStreamOptions",
    "ElevenLabsStreamTTS",
    "ElevenLabsTTS",
    "ElevenLabsTTSOptions",
]
