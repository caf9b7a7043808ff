"""voxpipe-echo: an LLM backend that repeats the user's words."""
