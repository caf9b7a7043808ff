"""Find backends: entry points in the ``voxpipe`` group, loaded through pluggy.

The simulated backends come in through the core distribution's own entry point, exactly as
a third-party plugin does. A plugin that fails to import, or that was written for another
plugin API version, is listed with its error instead of breaking discovery.

Environment: ``VOXPIPE_PLUGINS=a,b`` loads only the named entry points (``""`` loads none);
``VOXPIPE_TRACE_PLUGINS=1`` prints every hook call.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

import pluggy

from voxpipe import hookspecs
from voxpipe.errors import BackendNotFound, PluginError
from voxpipe.hookspecs import PLUGIN_API_VERSION, SUPPORTED_API_VERSIONS, BackendSpec

#: Backends that live in their own distribution, for the "pip install" hint.
#: Keys every backend section has for itself: a backend's options may not use them.
SECTION_KEYS = frozenset({"backend", "fallback"})

KNOWN_DISTRIBUTIONS = {
    "openai": "voxpipe-openai",
    "deepgram": "voxpipe-deepgram",
    "elevenlabs": "voxpipe-elevenlabs",
    "elevenlabs-ws": "voxpipe-elevenlabs",
    "pocketsphinx": "voxpipe-local",
    "rules": "voxpipe-local",
    "espeak": "voxpipe-local",
    "webrtcvad": "voxpipe-local",
    "silero": "voxpipe-local",
}


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """A backend as listed by ``voxpipe plugins``."""

    kind: str
    name: str
    plugin: str
    distribution: str
    version: str
    status: str  # "ok", or what is wrong
    spec: BackendSpec

    @property
    def api_version(self) -> int:
        return self.spec.api_version

    @property
    def usable(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be loaded at all."""

    plugin: str
    distribution: str
    version: str
    error: str


class Registry:
    """Backends by (kind, name), from entry points and programmatically registered plugins."""

    def __init__(self, *, entry_points: bool = True, builtins: bool = True) -> None:
        """``entry_points=False`` (tests, apps that register their own plugins) loads no
        installed plugin; the core's built-in backends (sim, the energy VAD) are registered
        anyway unless ``builtins=False``, so a config's defaults still resolve."""
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._origin: dict[str, tuple[str, str]] = {}
        self.failures: list[PluginFailure] = []
        self._tracing = bool(os.environ.get("VOXPIPE_TRACE_PLUGINS"))
        if entry_points:
            self._load_entry_points()
        elif builtins:
            from voxpipe.sim import plugin as builtin

            self.register(builtin, name="sim", distribution="voxpipe", version=_core_version())

    def register(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        distribution: str = "(registered in code)",
        version: str = "",
    ) -> str:
        """Register a plugin object or module (apps and tests); returns its plugin name."""
        try:
            registered = self._pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: same name or same object registered already
            raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from None
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is blocked")
        self._origin[registered] = (distribution, version)
        return registered

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._origin.pop(name, None)

    def backends(self, kind: str | None = None) -> list[BackendInfo]:
        """Every backend found (usable or not), sorted by kind and name."""
        found: list[BackendInfo] = []
        for impl in self._pm.hook.voxpipe_backends.get_hookimpls():
            dist, version = self._origin.get(impl.plugin_name, ("?", ""))
            try:
                specs: list[BackendSpec] = list(impl.function())  # type: ignore[call-overload]
                self._trace(
                    f"{impl.plugin_name} ({dist} {version}) voxpipe_backends() -> "
                    + (", ".join(f"{s.kind}/{s.name}" for s in specs) or "nothing")
                )
            except Exception as exc:  # a broken plugin must not break discovery
                self._trace(f"{impl.plugin_name} voxpipe_backends() raised {exc!r}")
                self.failures.append(
                    PluginFailure(
                        impl.plugin_name, dist, version, f"voxpipe_backends() raised {exc!r}"
                    )
                )
                self.unregister(impl.plugin_name)
                continue
            for spec in specs:
                found.append(
                    BackendInfo(
                        spec.kind, spec.name, impl.plugin_name, dist, version, _status(spec), spec
                    )
                )
        found.sort(key=lambda b: (b.kind, b.name, b.distribution))
        return [b for b in found if kind is None or b.kind == kind]

    def get(self, kind: str, name: str) -> BackendSpec:
        """The backend ``name`` of ``kind``; ``BackendNotFound`` says what is installed."""
        candidates = self.backends(kind)
        matches = [info for info in candidates if info.name == name]
        if len(matches) > 1:
            sources = " and ".join(f"{m.distribution} (plugin {m.plugin!r})" for m in matches)
            raise PluginError(
                f"{kind} backend {name!r} is provided by both {sources}; uninstall one of them"
            )
        for info in matches:
            if not info.usable:
                raise PluginError(
                    f"{kind} backend {name!r} from {info.distribution} "
                    f"cannot be used: {info.status}"
                )
            return info.spec
        raise BackendNotFound(_not_found_message(kind, name, candidates, self.failures))

    def _load_entry_points(self) -> None:
        wanted = os.environ.get("VOXPIPE_PLUGINS")
        only = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for ep in metadata.entry_points(group=hookspecs.PROJECT):
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.metadata["Name"] if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else ""
            if self._pm.get_plugin(ep.name) is not None:
                other = self._origin.get(ep.name, ("?", ""))[0]
                self.failures.append(
                    PluginFailure(
                        ep.name,
                        dist,
                        version,
                        f"entry point name {ep.name!r} is already used by {other}; "
                        "one of the two distributions must rename its entry point",
                    )
                )
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break discovery
                self.failures.append(
                    PluginFailure(ep.name, dist, version, f"import of {ep.value!r} failed: {exc!r}")
                )
                continue
            self._trace(f"loaded entry point {ep.name} = {ep.value} from {dist} {version}")
            self.register(module, name=ep.name, distribution=dist, version=version)

    def _trace(self, message: str) -> None:
        if self._tracing:
            print(f"voxpipe plugins: {message}", file=sys.stderr)


def _core_version() -> str:
    try:
        return metadata.version("voxpipe")
    except metadata.PackageNotFoundError:
        return ""


def _status(spec: BackendSpec) -> str:
    if spec.api_version not in SUPPORTED_API_VERSIONS:
        newer = spec.api_version > PLUGIN_API_VERSION
        speaks = " and ".join(str(v) for v in SUPPORTED_API_VERSIONS)
        return (
            f"incompatible: written for voxpipe plugin API {spec.api_version}, this voxpipe "
            f"speaks {speaks}; " + ("upgrade voxpipe" if newer else "upgrade the plugin")
        )
    shadowed = sorted(SECTION_KEYS & set(spec.options.model_fields))
    if shadowed:
        return (
            f"unusable: option {', '.join(shadowed)} is a key of every backend section "
            "([kind] backend / fallback); the plugin must rename it"
        )
    return "ok"


def _not_found_message(
    kind: str, name: str, candidates: list[BackendInfo], failures: list[PluginFailure]
) -> str:
    usable = [f"{b.name} ({b.distribution})" for b in candidates if b.usable]
    message = (
        f"no {kind} backend named {name!r}. Installed {kind} backends: "
        f"{', '.join(usable) if usable else 'none'}."
    )
    if name in KNOWN_DISTRIBUTIONS:
        dist = KNOWN_DISTRIBUTIONS[name]
        message += (
            f" The {name!r} backends come with the {dist} package: in a voxpipe checkout, "
            f"`pip install plugins/{dist}`, or its wheel from `make dist` "
            f"(`pip install dist/{dist.replace('-', '_')}-*.whl`)."
        )
    if failures:
        message += (
            " Some plugins failed to load (see `voxpipe plugins`): "
            + ", ".join(f.plugin for f in failures)
            + "."
        )
    return message


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default
