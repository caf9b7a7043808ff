"""voxpipe-echo: an LLM backend that repeats the user's words."""

__version__ = "0.1.0"
