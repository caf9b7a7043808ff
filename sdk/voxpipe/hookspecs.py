"""The plugin API: one hook, one spec type, one version number.

A plugin distribution declares ``[project.entry-points.voxpipe] NAME = "module"``; the module
implements ``voxpipe_backends`` with ``@hookimpl`` and returns a ``BackendSpec`` per backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy
from pydantic import BaseModel

from voxpipe.protocols import BackendKind

#: Entry point group and pluggy project name.
PROJECT = "voxpipe"
#: The plugin API this voxpipe speaks. Bumped when BackendSpec or the protocols change
#: shape; a plugin written for a version not in ``SUPPORTED_API_VERSIONS`` is listed but not
#: used. Version 1 backends are adapted to version 2 by ``voxpipe.compat``.
PLUGIN_API_VERSION = 2
SUPPORTED_API_VERSIONS = (1, 2)

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What every backend is told about the session it serves."""

    sample_rate: int = 16_000
    frame_ms: int = 20


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One backend a plugin provides.

    ``factory(options, context)`` builds it from a validated ``options`` model instance.
    ``api_version`` is the voxpipe plugin API the backend was written for.
    ``env_vars`` names the environment variables it reads keys from (documentation, errors).
    ``virtual_time``: the backend runs on a simulated clock (``--virtual-time``): it waits
    only on the event loop's timers or on its own CPU work in ``loop.run_in_executor``
    (which the simulated clock waits for in real time, counting ~0 virtual ms), never on a
    network or a device (nor on a thread the loop does not know of).
    """

    kind: BackendKind
    name: str
    factory: Callable[[Any, BackendContext], Any]
    options: type[BaseModel]
    api_version: int
    description: str = ""
    env_vars: tuple[str, ...] = ()
    virtual_time: bool = False


@hookspec
def voxpipe_backends() -> list[BackendSpec]:  # type: ignore[empty-body]
    """Return the backends this plugin provides."""
