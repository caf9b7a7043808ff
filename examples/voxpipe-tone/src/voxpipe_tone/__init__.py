"""voxpipe-tone: a TTS backend over a streaming speech SDK that is not HTTP."""

__version__ = "0.1.0"
