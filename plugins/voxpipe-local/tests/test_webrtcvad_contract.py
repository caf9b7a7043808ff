"""The webrtcvad VAD under voxpipe's VAD contract."""

from __future__ import annotations

from typing import Any, ClassVar

from voxpipe.testing import VADContract


class TestWebRTCVAD(VADContract):
    backend_name = "webrtcvad"
    distribution = "voxpipe-local"
    bad_options: ClassVar[list[tuple[dict[str, Any], str]]] = [
        ({"aggressiveness": 4}, "aggressiveness"),
        ({"noise_gate_db": -1}, "noise_gate_db"),
        ({"noise_window_ms": 100}, "noise_window_ms"),
    ]
