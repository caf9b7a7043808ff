"""Backend discovery through real entry points of distributions written to disk."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from pydantic import BaseModel

from voxpipe.config import load_config
from voxpipe.errors import BackendNotFound, ConfigError, PluginError
from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendContext, BackendSpec, hookimpl
from voxpipe.registry import Registry
from voxpipe.sim import SimASROptions, SimLLMOptions, SimTTSOptions

#: make(dist_name, version, entry_point_name, module_source) -> module name
MakeDist = Callable[[str, str, str, str], str]

ECHO_PLUGIN = """
from pydantic import BaseModel, ConfigDict

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = "echo: "


class EchoLLM:
    def __init__(self, options, context):
        self.options = options
        self.context = context


@hookimpl
def voxpipe_backends():
    return [BackendSpec("llm", "echo", EchoLLM, EchoOptions, PLUGIN_API_VERSION,
                        "says what it heard", ("ECHO_API_KEY",))]
"""

BROKEN_PLUGIN = """
raise ImportError("voxpipe-broken needs the frobnicate SDK")
"""

FUTURE_PLUGIN = """
from pydantic import BaseModel

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl


class FutureOptions(BaseModel):
    pass


@hookimpl
def voxpipe_backends():
    return [BackendSpec("tts", "future", object, FutureOptions, PLUGIN_API_VERSION + 1)]
"""


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Write installed-looking distributions (package + dist-info) into a fresh sys.path entry.

    Module names get a random suffix so no two tests share a ``sys.modules`` entry; the ones
    a test imported are removed afterwards.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def make(dist_name: str, version: str, entry_point: str, source: str) -> str:
        module = f"{dist_name.replace('-', '_')}_{uuid.uuid4().hex[:12]}"
        package = site / module
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent(source))
        info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n"
        )
        (info / "entry_points.txt").write_text(f"[voxpipe]\n{entry_point} = {module}\n")
        modules.append(module)
        importlib.invalidate_caches()
        return module

    yield make
    for module in modules:
        sys.modules.pop(module, None)


#: The entry points these tests create, plus the core's: other installed plugins stay out.
TEST_ENTRY_POINTS = "sim,testplug,broken,future,shadow,echo_a,echo_b"


@pytest.fixture
def no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXPIPE_PLUGINS", TEST_ENTRY_POINTS)
    monkeypatch.delenv("VOXPIPE_TRACE_PLUGINS", raising=False)


pytestmark = pytest.mark.usefixtures("no_plugin_env")


def test_sim_backends_come_from_the_core_distribution() -> None:
    registry = Registry()
    infos = [b for b in registry.backends() if b.plugin == "sim"]
    assert [(b.kind, b.name) for b in infos] == [
        ("asr", "sim"),
        ("llm", "sim"),
        ("tts", "sim"),
        ("tts", "sim-stream"),
        ("vad", "energy"),
    ]
    for info in infos:
        assert info.api_version == PLUGIN_API_VERSION == 2
        assert info.plugin == "sim"
        assert info.distribution == "voxpipe"
        assert info.version == metadata.version("voxpipe")
        assert info.status == "ok"
        assert info.usable
    assert registry.get("asr", "sim").options is SimASROptions
    assert registry.get("llm", "sim").options is SimLLMOptions
    assert registry.get("tts", "sim").options is SimTTSOptions
    assert registry.failures == []


def test_plugin_distribution_is_discovered(make_dist: MakeDist) -> None:
    module = make_dist("voxpipe-testplug", "0.3.1", "testplug", ECHO_PLUGIN)
    assert module not in sys.modules
    registry = Registry()

    llms = registry.backends("llm")
    assert [(b.name, b.distribution) for b in llms] == [
        ("echo", "voxpipe-testplug"),
        ("sim", "voxpipe"),
    ]
    echo = llms[0]
    assert (echo.kind, echo.plugin, echo.version, echo.status) == ("llm", "testplug", "0.3.1", "ok")
    assert echo.usable

    spec = registry.get("llm", "echo")
    assert spec == echo.spec
    assert spec.name == "echo"
    assert spec.description == "says what it heard"
    assert spec.options.__module__ == module
    assert spec.options().prefix == "echo: "
    backend = spec.factory(spec.options(prefix="> "), BackendContext(sample_rate=8_000))
    assert backend.options.prefix == "> "
    assert backend.context.sample_rate == 8_000

    # The core's sim backends are still there, from their own distribution.
    assert registry.get("llm", "sim").options is SimLLMOptions
    assert {b.distribution for b in registry.backends() if b.name == "sim"} == {"voxpipe"}
    assert registry.failures == []


def test_plugin_backend_is_usable_from_config(make_dist: MakeDist) -> None:
    make_dist("voxpipe-testplug", "0.3.1", "testplug", ECHO_PLUGIN)
    registry = Registry()
    config = load_config({"llm": {"backend": "echo", "prefix": "> "}}, registry=registry)
    spec, options = config.backend("llm")
    assert spec.name == "echo"
    assert type(options) is spec.options
    assert options.prefix == "> "
    assert config.build("llm").options is options

    with pytest.raises(
        ConfigError,
        match=r"\[llm\] pitch: unknown option for the llm backend "
        r"'echo' \(valid: backend, prefix\)",
    ):
        load_config({"llm": {"backend": "echo", "pitch": 3}}, registry=registry)
    with pytest.raises(ConfigError, match=r"set ECHO_API_KEY in the environment"):
        load_config({"llm": {"backend": "echo", "api_key": "sk-1"}}, registry=registry)
    # Another kind does not see it.
    with pytest.raises(
        BackendNotFound, match=r"Installed tts backends: sim \(voxpipe\), sim-stream \(voxpipe\)\."
    ):
        load_config({"tts": {"backend": "echo"}}, registry=registry)


def test_plugin_that_fails_to_import_is_reported(make_dist: MakeDist) -> None:
    make_dist("voxpipe-testplug", "0.3.1", "testplug", ECHO_PLUGIN)
    broken = make_dist("voxpipe-broken", "2.0.0", "broken", BROKEN_PLUGIN)
    registry = Registry()

    assert registry.get("llm", "echo").name == "echo"  # the others still load
    assert registry.get("asr", "sim").name == "sim"
    assert len(registry.failures) == 1
    failure = registry.failures[0]
    assert (failure.plugin, failure.distribution, failure.version) == (
        "broken",
        "voxpipe-broken",
        "2.0.0",
    )
    assert f"import of {broken!r} failed" in failure.error
    assert "ImportError" in failure.error
    assert "needs the frobnicate SDK" in failure.error
    assert all(b.plugin != "broken" for b in registry.backends())

    with pytest.raises(BackendNotFound) as info:
        registry.get("asr", "frobnicate")
    assert "Some plugins failed to load (see `voxpipe plugins`): broken." in str(info.value)


SHADOWING_PLUGIN = """
from pydantic import BaseModel

from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendSpec, hookimpl


class ShadowOptions(BaseModel):
    fallback: str = "say sorry"


@hookimpl
def voxpipe_backends():
    return [BackendSpec("llm", "shadow", object, ShadowOptions, PLUGIN_API_VERSION)]
"""


def test_a_backend_whose_option_is_a_section_key_is_listed_as_unusable(
    make_dist: MakeDist,
) -> None:
    make_dist("voxpipe-shadow", "1.0", "shadow", SHADOWING_PLUGIN)
    registry = Registry()
    assert registry.failures == []
    (info,) = [b for b in registry.backends("llm") if b.name == "shadow"]
    assert not info.usable
    assert info.status.startswith("unusable: option fallback is a key of every backend section")


def test_plugin_for_a_newer_api_is_listed_but_not_usable(make_dist: MakeDist) -> None:
    make_dist("voxpipe-future", "9.0", "future", FUTURE_PLUGIN)
    registry = Registry()
    (info,) = [b for b in registry.backends("tts") if b.name == "future"]
    assert info.distribution == "voxpipe-future"
    assert info.version == "9.0"
    assert info.status.startswith("incompatible")
    assert f"plugin API {PLUGIN_API_VERSION + 1}" in info.status
    assert "speaks 1 and 2" in info.status
    assert "upgrade voxpipe" in info.status
    assert not info.usable
    assert registry.failures == []

    with pytest.raises(PluginError) as exc:
        registry.get("tts", "future")
    message = str(exc.value)
    assert "tts backend 'future' from voxpipe-future cannot be used: incompatible" in message
    assert "upgrade voxpipe" in message
    assert not isinstance(exc.value, BackendNotFound)

    # It is not offered as an installed alternative either.
    with pytest.raises(
        BackendNotFound, match=r"Installed tts backends: sim \(voxpipe\), sim-stream \(voxpipe\)\.$"
    ):
        registry.get("tts", "other")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("sim", {"sim"}),
        ("testplug", {"testplug"}),
        (" sim , testplug ", {"sim", "testplug"}),
        ("", set()),
        (",", set()),
    ],
)
def test_voxpipe_plugins_restricts_entry_points(
    make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch, wanted: str, expected: set[str]
) -> None:
    make_dist("voxpipe-testplug", "0.3.1", "testplug", ECHO_PLUGIN)
    broken = make_dist("voxpipe-broken", "2.0.0", "broken", BROKEN_PLUGIN)
    monkeypatch.setenv("VOXPIPE_PLUGINS", wanted)
    registry = Registry()
    assert {b.plugin for b in registry.backends()} == expected
    assert registry.failures == []  # the broken plugin was never imported
    assert broken not in sys.modules
    if "testplug" not in expected:
        with pytest.raises(BackendNotFound):
            registry.get("llm", "echo")


def test_without_voxpipe_plugins_everything_loads(
    make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dist("voxpipe-testplug", "0.3.1", "testplug", ECHO_PLUGIN)
    monkeypatch.delenv("VOXPIPE_PLUGINS")
    assert {b.plugin for b in Registry().backends()} >= {"sim", "testplug"}


# --- programmatic registration -----------------------------------------------------------


class BeepOptions(BaseModel):
    volume: float = 0.5


class BeepPlugin:
    def __init__(self, api_version: int = PLUGIN_API_VERSION) -> None:
        self.api_version = api_version

    @hookimpl
    def voxpipe_backends(self) -> list[BackendSpec]:
        return [BackendSpec("tts", "beep", object, BeepOptions, self.api_version, "beeps")]


def test_registry_without_entry_points_is_empty() -> None:
    registry = Registry(entry_points=False, builtins=False)
    assert registry.backends() == []
    with pytest.raises(
        BackendNotFound,
        match=r"no asr backend named 'sim'\. "
        r"Installed asr backends: none\.",
    ):
        registry.get("asr", "sim")


def test_register_lookup_unregister() -> None:
    registry = Registry(entry_points=False, builtins=False)
    name = registry.register(BeepPlugin(), name="beeper", distribution="my-app", version="1.2")
    assert name == "beeper"

    (info,) = registry.backends()
    assert (info.kind, info.name, info.plugin) == ("tts", "beep", "beeper")
    assert (info.distribution, info.version, info.status) == ("my-app", "1.2", "ok")
    spec = registry.get("tts", "beep")
    assert spec.options is BeepOptions
    assert registry.backends("asr") == []

    registry.unregister(name)
    assert registry.backends() == []
    with pytest.raises(BackendNotFound, match=r"no tts backend named 'beep'"):
        registry.get("tts", "beep")


def test_register_without_name_or_origin() -> None:
    registry = Registry(entry_points=False, builtins=False)
    name = registry.register(BeepPlugin())
    assert name
    (info,) = registry.backends("tts")
    assert info.plugin == name
    assert info.distribution == "(registered in code)"
    assert info.version == ""
    registry.unregister(name)
    assert registry.backends() == []


def test_register_alongside_entry_points() -> None:
    registry = Registry()
    registry.register(BeepPlugin(), name="beeper")
    assert [b.name for b in registry.backends("tts")] == ["beep", "sim", "sim-stream"]
    with pytest.raises(
        BackendNotFound,
        match=r"Installed tts backends: beep \(\(registered in "
        r"code\)\), sim \(voxpipe\), sim-stream \(voxpipe\)\.",
    ):
        registry.get("tts", "nope")


def test_plugins_for_api_1_are_still_usable() -> None:
    registry = Registry(entry_points=False, builtins=False)
    registry.register(BeepPlugin(api_version=1), name="v1")
    (info,) = registry.backends()
    assert (info.status, info.api_version) == ("ok", 1)
    assert registry.get("tts", "beep").api_version == 1


def test_register_older_api_says_upgrade_the_plugin() -> None:
    registry = Registry(entry_points=False, builtins=False)
    registry.register(BeepPlugin(api_version=0), name="old")
    (info,) = registry.backends()
    assert info.status.startswith("incompatible")
    assert info.status.endswith("upgrade the plugin")
    with pytest.raises(PluginError, match="upgrade the plugin"):
        registry.get("tts", "beep")


def test_blocked_plugin_name_cannot_be_registered() -> None:
    registry = Registry(entry_points=False, builtins=False)
    registry._pm.set_blocked("beeper")
    with pytest.raises(PluginError, match="blocked"):
        registry.register(BeepPlugin(), name="beeper")


def test_registering_the_same_name_twice_is_a_plugin_error() -> None:
    registry = Registry(entry_points=False, builtins=False)
    registry.register(BeepPlugin(), name="beeper")
    with pytest.raises(PluginError, match="cannot register plugin 'beeper'"):
        registry.register(BeepPlugin(), name="beeper")


class RaisingPlugin:
    @hookimpl
    def voxpipe_backends(self) -> list[BackendSpec]:
        raise RuntimeError("lost the connection to the GPU")


def test_hook_that_raises_is_reported_and_dropped() -> None:
    registry = Registry(entry_points=False, builtins=False)
    registry.register(BeepPlugin(), name="beeper")
    registry.register(RaisingPlugin(), name="raiser", distribution="voxpipe-raiser", version="0.1")
    assert [b.name for b in registry.backends()] == ["beep"]
    (failure,) = registry.failures
    assert (failure.plugin, failure.distribution, failure.version) == (
        "raiser",
        "voxpipe-raiser",
        "0.1",
    )
    assert failure.error == (
        "voxpipe_backends() raised RuntimeError('lost the connection to the GPU')"
    )
    # Dropped after the first failure: listing again neither raises nor repeats the failure.
    assert [b.name for b in registry.backends()] == ["beep"]
    assert len(registry.failures) == 1


def test_trace_plugins_prints_hook_calls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOXPIPE_TRACE_PLUGINS", "1")
    registry = Registry(entry_points=False, builtins=False)
    registry.register(BeepPlugin(), name="beeper")
    capsys.readouterr()
    registry.backends()
    trace = capsys.readouterr().err
    assert "beeper" in trace and "voxpipe_backends() -> " in trace
    monkeypatch.delenv("VOXPIPE_TRACE_PLUGINS")
    quiet = Registry(entry_points=False, builtins=False)
    quiet.register(BeepPlugin(), name="beeper")
    quiet.backends()
    assert capsys.readouterr().err == ""


def test_entry_point_name_clash_is_reported_not_silent(make_dist: MakeDist) -> None:
    make_dist("voxpipe-impostor", "6.6.6", "sim", ECHO_PLUGIN)
    registry = Registry()
    (clash,) = [f for f in registry.failures if f.plugin == "sim"]
    loaded = registry.backends()[0].distribution
    assert {clash.distribution, loaded} == {"voxpipe-impostor", "voxpipe"}
    assert f"entry point name 'sim' is already used by {loaded}" in clash.error
    assert "rename" in clash.error


def test_two_plugins_providing_the_same_backend_is_an_error(make_dist: MakeDist) -> None:
    make_dist("voxpipe-echo-a", "1.0", "echo_a", ECHO_PLUGIN)
    make_dist("voxpipe-echo-b", "2.0", "echo_b", ECHO_PLUGIN)
    registry = Registry()
    with pytest.raises(PluginError, match=r"provided by both voxpipe-echo-a .* and voxpipe-echo-b"):
        registry.get("llm", "echo")


def test_incompatible_backend_in_config_names_the_file(make_dist: MakeDist, tmp_path: Path) -> None:
    make_dist("voxpipe-future", "9.0", "future", FUTURE_PLUGIN)
    config = tmp_path / "agent.toml"
    config.write_text('[tts]\nbackend = "future"\n')
    with pytest.raises(ConfigError, match=r"agent.toml: \[tts\] backend: .*incompatible"):
        load_config(config, registry=Registry())


def test_without_entry_points_the_built_ins_remain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CONTRIBUTING example: a plugin registered in code, the defaults around it."""
    registry = Registry(entry_points=False)
    registry.register(BeepPlugin(), name="beeper")
    config = load_config({"tts": {"backend": "beep"}}, registry=registry)
    assert [config.backend(k)[0].name for k in ("asr", "llm", "tts", "vad")] == [
        "sim",
        "sim",
        "beep",
        "energy",
    ]
    (sim,) = [b for b in registry.backends("asr")]
    assert (sim.plugin, sim.distribution) == ("sim", "voxpipe")
