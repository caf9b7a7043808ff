"""The conformance kit: prove a backend plugin behaves, offline, under virtual time.

Subclass a contract in your plugin's tests and supply a factory for your backend with its
transport already mocked; the contract's tests check registration, options, streaming,
cancellation, error mapping, audio format and alignment, driving the backend through the
plugin API v2 surface (a v1 backend through the core's adapter)::

    from voxpipe.testing import LLMContract, ServerControl, Failure

    class TestMyLLM(LLMContract):
        backend_name = "mine"
        distribution = "voxpipe-mine"
        key_env_var = "MINE_API_KEY"
        bad_options = [({"temperature": "hot"}, "temperature")]

        def make_backend(self, control, context): ...
        def make_failing_backend(self, failure, context): ...

``SinkContract`` does the same for an audio sink (``make_sink(sample_rate)``), and
``VADContract`` for a VAD (``backend_name`` and ``distribution`` are enough). See
CONTRIBUTING.md for the whole guide.
"""

from voxpipe.testing.contracts import (
    ASRContract,
    LLMContract,
    SinkContract,
    TTSContract,
    check_alignment,
)
from voxpipe.testing.control import Failure, ServerControl
from voxpipe.testing.vad_contract import VADContract, voiced_speech

__all__ = [
    "ASRContract",
    "Failure",
    "LLMContract",
    "ServerControl",
    "SinkContract",
    "TTSContract",
    "VADContract",
    "check_alignment",
    "voiced_speech",
]
