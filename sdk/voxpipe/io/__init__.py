"""Audio sources and sinks: WAV files paced in real time, simulated speech, call recording,
and push-style audio for transports."""

from voxpipe.io.push import Overrun, PushSink, PushSource
from voxpipe.io.recorder import CallRecorder, Track
from voxpipe.io.simspeech import Line, SimSpeechSource
from voxpipe.io.wav import NullSink, WavSink, WavSource

__all__ = [
    "CallRecorder",
    "Line",
    "NullSink",
    "Overrun",
    "PushSink",
    "PushSource",
    "SimSpeechSource",
    "Track",
    "WavSink",
    "WavSource",
]
