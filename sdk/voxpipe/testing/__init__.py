"""The conformance kit: prove a backend plugin behaves, offline, under virtual time.

Subclass a contract in your plugin's tests and supply a factory for your backend with its
transport already mocked; the contract's tests check registration, options, streaming,
cancellation, error mapping and audio format::

    from voxpipe.testing import LLMContract, ServerControl, Failure

    class TestMyLLM(LLMContract):
        backend_name = "mine"
        distribution = "voxpipe-mine"
        key_env_var = "MINE_API_KEY"
        bad_options = [({"temperature": "hot"}, "temperature")]

        def make_backend(self, control, context): ...
        def make_failing_backend(self, failure, context): ...

See CONTRIBUTING.md for the whole guide.
"""

from voxpipe.testing.contracts import ASRContract, LLMContract, TTSContract
from voxpipe.testing.control import Failure, ServerControl

__all__ = ["ASRContract", "Failure", "LLMContract", "ServerControl", "TTSContract"]
