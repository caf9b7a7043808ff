"""Audio sources and sinks: WAV files paced in real time, simulated speech, call recording."""

from voxpipe.io.recorder import CallRecorder, Track
from voxpipe.io.simspeech import Line, SimSpeechSource
from voxpipe.io.wav import NullSink, WavSink, WavSource

__all__ = ["CallRecorder", "Line", "NullSink", "SimSpeechSource", "Track", "WavSink", "WavSource"]
