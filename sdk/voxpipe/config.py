"""AgentConfig: a TOML file (or dict) validated into one model.

Each backend section's options are validated by that backend's own options model, so an
unknown or mistyped option is an error naming the file, the key and what was expected.
API keys are never read from config, only from the environment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from voxpipe.budgets import DEFAULT_BUDGETS, LatencyBudgets
from voxpipe.errors import ConfigError, PluginError
from voxpipe.hookspecs import BackendContext, BackendSpec
from voxpipe.protocols import BACKEND_KINDS
from voxpipe.registry import Registry, default_registry
from voxpipe.text import PhrasePolicy
from voxpipe.turns import TurnSettings

_SECRET_KEY = re.compile(
    r"^(.*_)?(api_?key|secret|password)$|^(auth_|access_|bearer_)?token$", re.IGNORECASE
)


class BackendChoice(BaseModel):
    """``[asr]`` / ``[llm]`` / ``[tts]``: ``backend = "<name>"`` plus that backend's options,
    and ``fallback``: the backends to try next, each ``{backend = "<name>", options...}``."""

    model_config = ConfigDict(extra="allow")

    backend: str = "sim"
    fallback: list[dict[str, Any]] = Field(
        default_factory=list, description="backends to try next, in order"
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def chain(self) -> list[tuple[str, dict[str, Any]]]:
        """(backend name, its options) for the backend and its fallbacks, in order."""
        rest = [
            (str(f.get("backend", "sim")), {k: v for k, v in f.items() if k != "backend"})
            for f in self.fallback
        ]
        return [(self.backend, self.options), *rest]


class VADChoice(BackendChoice):
    """``[vad]``: ``backend = "<name>"`` (the energy VAD by default) plus its options."""

    backend: str = "energy"


class AgentSettings(BaseModel):
    """``[agent]``: the conversation and the audio format of the session."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    system_prompt: str = (
        "You are a helpful voice assistant. Answer briefly, in plain spoken English."
    )
    sample_rate: int = Field(16_000, ge=8_000, le=48_000, description="session sample rate, Hz")
    frame_ms: int = Field(20, ge=10, le=100, description="input frame length, ms")
    playout_lookahead_ms: float = Field(
        1000, ge=100, le=30_000, description="how far synthesis may run ahead of playout, ms"
    )
    fillers: list[str] = Field(
        default_factory=lambda: ["One moment.", "Let me check."],
        min_length=1,
        description="holding phrases the filler policy says, in turn",
    )
    apology: str = Field(
        "Sorry, I couldn't answer that. Could you say it again?",
        description="said when a reply fails or is cancelled; empty: stay silent",
    )
    max_consecutive_failures: int = Field(
        3, ge=1, le=100, description="failed turns in a row that end the session"
    )
    history_messages: int = Field(
        40, ge=1, le=10_000, description="most history messages sent to the LLM each turn"
    )
    history_chars: int = Field(
        16_000, ge=100, le=1_000_000, description="most history characters sent each turn"
    )
    phrases: PhrasePolicy = Field(default_factory=PhrasePolicy)


class AgentConfig(BaseModel):
    """A whole agent: settings, the backends, turn-taking and the latency budgets."""

    model_config = ConfigDict(extra="forbid")

    agent: AgentSettings = Field(default_factory=AgentSettings)
    asr: BackendChoice = Field(default_factory=BackendChoice)
    llm: BackendChoice = Field(default_factory=BackendChoice)
    tts: BackendChoice = Field(default_factory=BackendChoice)
    vad: VADChoice = Field(default_factory=VADChoice)
    turns: TurnSettings = Field(default_factory=TurnSettings)
    budgets: LatencyBudgets = Field(default_factory=DEFAULT_BUDGETS.model_copy)

    _source: str = PrivateAttr("<dict>")
    _resolved: dict[str, list[tuple[BackendSpec, BaseModel]]] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    @property
    def context(self) -> BackendContext:
        return BackendContext(sample_rate=self.agent.sample_rate, frame_ms=self.agent.frame_ms)

    def backend(self, kind: str) -> tuple[BackendSpec, BaseModel]:
        """The spec and validated options of the ``kind`` backend."""
        return self._resolved[kind][0]

    def chain(self, kind: str) -> list[tuple[BackendSpec, BaseModel]]:
        """The ``kind`` backend and its fallbacks, in order."""
        return list(self._resolved[kind])

    def build(self, kind: str, index: int = 0) -> Any:
        """Construct the ``kind`` backend (``index`` > 0: one of its fallbacks)."""
        spec, options = self._resolved[kind][index]
        return spec.factory(options, self.context)


def load_config(
    source: str | Path | dict[str, Any], *, registry: Registry | None = None
) -> AgentConfig:
    """Read and validate a config file (TOML) or dict, including every backend's options."""
    if isinstance(source, dict):
        return parse_config(source, "<dict>", registry=registry)
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file (TOML).") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied).") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); a config file is TOML in UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
    return parse_config(data, str(path), registry=registry)


def parse_config(
    data: dict[str, Any], source: str = "<dict>", *, registry: Registry | None = None
) -> AgentConfig:
    """Validate ``data`` (already parsed) as an AgentConfig; ``source`` names it in errors."""
    _refuse_moved_keys(data, source)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    config._source = source
    registry = registry or default_registry()
    for kind in BACKEND_KINDS:
        choice: BackendChoice = getattr(config, kind)
        if kind == "vad" and choice.fallback:
            raise ConfigError(f"{source}: [vad] fallback: the VAD has no fallback chain.")
        config._resolved[kind] = [
            _resolve(
                registry,
                source,
                kind if i == 0 else f"{kind}.fallback.{i - 1}",
                kind,
                name,
                options,
            )
            for i, (name, options) in enumerate(choice.chain())
        ]
    return config


def _resolve(
    registry: Registry, source: str, where: str, kind: str, name: str, given: dict[str, Any]
) -> tuple[BackendSpec, BaseModel]:
    """The spec of backend ``name`` and its validated ``given`` options (at ``[where]``)."""
    try:
        spec = registry.get(kind, name)
    except ConfigError as exc:
        raise type(exc)(f"{source}: [{where}] backend: {exc}") from None
    except PluginError as exc:
        raise ConfigError(f"{source}: [{where}] backend: {exc}") from None
    for key in given:
        if _SECRET_KEY.search(key):
            env = " or ".join(spec.env_vars) or "the provider's key variable"
            raise ConfigError(
                f"{source}: [{where}] {key}: API keys are never read from config files; "
                f"remove it and set {env} in the environment instead."
            )
        if key == "fallback":
            raise ConfigError(
                f"{source}: [{where}] fallback: a fallback has no fallback of its own."
            )
    try:
        options = spec.options.model_validate(given)
    except ValidationError as exc:
        raise ConfigError(
            _describe(exc, source, prefix=tuple(where.split(".")), backend=spec)
        ) from None
    return spec, options


#: Keys that moved in plugin API v2: (section, key) -> where they are now.
_MOVED = {
    ("agent", "vad_threshold_db"): "[vad] threshold_db",
    ("asr", "endpoint_ms"): "[turns] endpoint_ms (the session's VAD ends speech for every ASR)",
    ("asr", "threshold_db"): "[vad] threshold_db (the session's VAD decides what is speech)",
}


def _refuse_moved_keys(data: dict[str, Any], source: str) -> None:
    for (section, key), where in _MOVED.items():
        table = data.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        if section == "asr" and table.get("backend", "sim") not in ("sim", "openai"):
            continue  # another ASR's own option of that name
        raise ConfigError(f"{source}: [{section}] {key} has moved: set {where} instead.")


#: Text that may be a credential: a key prefix, or a long unbroken run of letters mixed with
#: digits (a URL, a path or a plain word is not one).
_SECRET_LIKE = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"
    r"|(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{24,}"
)


def _shown(value: Any) -> str:
    """``value`` for an error message, unless some text in it looks like a secret: then only
    its type (a key put in the wrong option must not be printed)."""
    if _SECRET_LIKE.search(repr(value)):
        return f"a {type(value).__name__}, not shown: it may hold a secret"
    return repr(value)


def _describe(
    exc: ValidationError,
    source: str,
    prefix: tuple[str, ...] = (),
    backend: BackendSpec | None = None,
) -> str:
    """One paragraph: file, key path, what was wrong, what was given."""
    problems = []
    for err in exc.errors():
        loc: list[str] = list(prefix)
        for part in err["loc"]:
            if isinstance(part, int) and loc:  # a list item: chunk_length_schedule[1]
                loc[-1] += f"[{part}]"
            else:
                loc.append(str(part))
        section = f"[{'.'.join(loc[:-1])}] " if len(loc) > 1 else ""
        key = loc[-1] if loc else "(top level)"
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            valid = ", ".join(AgentConfig.model_fields)
            problem = f"unknown section (valid: {valid})"
        elif err["type"] == "extra_forbidden":
            problem = "unknown option"
            if backend is not None:
                valid = ", ".join(["backend", *backend.options.model_fields])
                problem += f" for the {backend.kind} backend {backend.name!r} (valid: {valid})"
        else:
            problem = err["msg"]
            if "input" in err and err["type"] != "missing":
                problem += f" (got {_shown(err['input'])})"
        problems.append(f"{section}{key}: {problem}")
    return f"{source}: invalid config: " + "; ".join(problems) + "."
