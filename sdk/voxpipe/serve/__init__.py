"""``voxpipe serve``: the agent behind a WebSocket, one Session per connection (the
protocol: README.md, "The wire protocol"), with health, readiness and Prometheus metrics.
Needs the ``serve`` extra: ``pip install 'voxpipe[serve]'``."""

from voxpipe.errors import UsageError

try:
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as missing:
    raise UsageError(
        f"voxpipe serve needs {missing.name}, which is not installed: pip install 'voxpipe[serve]'"
    ) from None

from voxpipe.serve.app import VoiceServer, create_app
from voxpipe.serve.limits import Limits
from voxpipe.serve.runner import DEFAULT_HOST, DEFAULT_PORT, DrainingServer, bind, run

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DrainingServer",
    "Limits",
    "VoiceServer",
    "bind",
    "create_app",
    "run",
]
