"""Deepgram backends for voxpipe: ``[asr] backend = "deepgram"`` (the live WebSocket),
``"deepgram-rest"`` (pre-recorded, per utterance) and ``[tts] backend = "deepgram"`` (Aura).

The key comes from ``DEEPGRAM_API_KEY`` only; ``base_url`` points any of them at another
Deepgram-speaking server (self-hosted Deepgram, ``voxpipe_deepgram.testing.FakeDeepgram``).
"""

from voxpipe_deepgram.live import DeepgramASR, DeepgramASROptions, DeepgramASRStream
from voxpipe_deepgram.rest import DeepgramRESTASR, DeepgramRESTASROptions
from voxpipe_deepgram.tts import DeepgramTTS, DeepgramTTSOptions

__version__ = "0.1.0"

__all__ = [
    "DeepgramASR",
    "DeepgramASROptions",
    "DeepgramASRStream",
    "DeepgramRESTASR",
    "DeepgramRESTASROptions",
    "DeepgramTTS",
    "DeepgramTTSOptions",
]
