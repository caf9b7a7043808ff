"""The voxpipe command line: demo, run, plugins, bench, report.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config, key or input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voxpipe import __version__
from voxpipe import bench as bench_module
from voxpipe.agent import VoiceAgent
from voxpipe.config import AgentConfig, load_config
from voxpipe.demo import BARGE_IN_LINES, DEMO_LINES, demo_config, local_voice, said_and_heard
from voxpipe.errors import AuthError, UsageError, VoxpipeError
from voxpipe.io import CallRecorder, SimSpeechSource, WavSink, WavSource
from voxpipe.live import LiveView, Verbosity
from voxpipe.metrics import SessionMetrics
from voxpipe.plot import plot_session, summary_path
from voxpipe.protocols import AudioSink, AudioSource
from voxpipe.registry import default_registry
from voxpipe.report import turn_line, turn_table
from voxpipe.runtime import freeze_gc, loop_factory
from voxpipe.session import Session

console = Console()
errors = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except (UsageError, AuthError) as exc:  # fix the input, the config or the key
        errors.print(f"[bold red]voxpipe: error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except VoxpipeError as exc:
        errors.print(f"[bold red]voxpipe: failed:[/] {escape(str(exc))}", highlight=False)
        return 1
    except Stopped as stop:
        errors.print(f"voxpipe: {stop.reason} by {stop.signal}", highlight=False)
        return stop.exit_code
    except KeyboardInterrupt:
        errors.print("voxpipe: interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("VOXPIPE_DEBUG"):
            raise
        errors.print(
            f"[bold red]voxpipe: failed:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(set VOXPIPE_DEBUG=1 for the traceback)",
            highlight=False,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxpipe",
        description="Streaming voice agents (ASR -> LLM -> TTS) with measured, budgeted "
        "latency. Exit codes: 0 ok, 1 a runtime failure, 2 a bad command line, config, "
        "key or input; 130 / 143 stopped by Ctrl-C / SIGTERM.",
        epilog="`voxpipe COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"voxpipe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the tutorial's three-turn scenario on sim backends")
    demo.add_argument("--config", type=Path, help="agent config (default: sim, demo budgets)")
    demo.add_argument(
        "--barge-in",
        action="store_true",
        help="the user interrupts the agent's first answer, 1.5 s into it",
    )
    demo.add_argument(
        "--local",
        action="store_true",
        help="real speech, offline: espeak-ng says the user's lines, pocketsphinx hears them, "
        "rules answer, espeak-ng speaks (needs the voxpipe-local plugin)",
    )
    _add_outputs(demo)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="stream a WAV file through the configured agent")
    run.add_argument("--config", type=Path, required=True, help="agent config (TOML)")
    run.add_argument("--input", type=Path, required=True, help="the user's speech (WAV)")
    run.add_argument("--output", type=Path, help="write the agent's audio here (WAV)")
    _add_outputs(run)
    run.set_defaults(handler=_run)

    plugins = commands.add_parser("plugins", help="list every backend found")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=_plugins)

    bench = commands.add_parser(
        "bench", help="measure the orchestrator's own overhead with N concurrent sessions"
    )
    bench_module.add_arguments(bench)
    bench.set_defaults(handler=bench_module.run_and_report)

    serve = commands.add_parser(
        "serve",
        help="the agent behind a WebSocket, one session per connection (needs voxpipe[serve])",
        description="Serve the configured agent over WebSocket (/ws; the protocol is in "
        "README.md, 'voxpipe serve') with /healthz, /readyz and /metrics. SIGTERM drains: new "
        "sessions are refused, live ones are told and given --grace-s seconds.",
    )
    serve.add_argument("--config", type=Path, required=True, help="agent config (TOML)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    for flag, kind, text in SERVE_LIMITS:
        metavar = "N" if kind is int else "S"
        serve.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=text)
    serve.set_defaults(handler=_serve)

    report = commands.add_parser("report", help="tables and a plot from a saved metrics file")
    report.add_argument("metrics", type=Path, help="a metrics JSON written with --json")
    report.add_argument("--plot", type=Path, help="write a timeline PNG here")
    _add_verbosity(report)
    report.set_defaults(handler=_report)
    return parser


#: ``voxpipe serve``'s limit flags: (flag, type, help); each sets the ``Limits`` field of
#: its name.
SERVE_LIMITS: tuple[tuple[str, type, str], ...] = (
    ("--max-sessions", int, "sessions at once; more are refused (default 20)"),
    ("--max-session-s", float, "longest session, seconds (default 3600)"),
    ("--idle-timeout-s", float, "end a session whose client sends nothing this long (default 30)"),
    ("--grace-s", float, "on SIGTERM, how long live sessions may go on (default 30)"),
)


def _serve(args: argparse.Namespace) -> int:
    from voxpipe.serve import Limits, run  # the serve extra: a clear error without it

    names = (flag[2:].replace("-", "_") for flag, _, _ in SERVE_LIMITS)
    limits = Limits(**{name: getattr(args, name) for name in names if hasattr(args, name)})
    return run(args.config, args.host, args.port, limits)


def _add_verbosity(command: argparse.ArgumentParser) -> None:
    loudness = command.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="print each turn's stage and budget tables"
    )
    loudness.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _verbosity(args: argparse.Namespace) -> Verbosity:
    if args.quiet:
        return Verbosity.QUIET
    return Verbosity.VERBOSE if args.verbose else Verbosity.NORMAL


def _add_outputs(command: argparse.ArgumentParser) -> None:
    _add_verbosity(command)
    command.add_argument("--json", type=Path, help="write the session metrics here")
    command.add_argument("--plot", type=Path, help="write a per-turn timeline PNG here")
    command.add_argument(
        "--record",
        type=Path,
        help="write a stereo WAV: user left, agent right, on the session clock",
    )
    command.add_argument(
        "--virtual-time",
        action="store_true",
        help="simulate the clock: runs instantly with exact timings",
    )


def _demo(args: argparse.Namespace) -> int:
    check_paths(inputs={"--config": args.config}, outputs=_outputs(args))
    if args.config and args.local:
        raise UsageError("--local picks the agent's backends: give it or --config, not both.")
    lines = BARGE_IN_LINES if args.barge_in else DEMO_LINES
    config = load_config(args.config) if args.config else demo_config(local=args.local, lines=lines)
    _check_virtual_time(config, args)
    agent = VoiceAgent.from_config(config)
    source = SimSpeechSource(
        lines,
        sample_rate=config.agent.sample_rate,
        frame_ms=config.agent.frame_ms,
        voice=local_voice(config) if args.local else None,
    )
    scenario = ", the user barges in on the first answer" if args.barge_in else ""
    voice = ", the user's voice espeak-ng" if args.local else ""
    with LiveView(console, _verbosity(args)) as view:
        view.print(
            f"[bold]voxpipe demo[/]: {len(lines)} turns{scenario}, backends "
            + escape(_backends(config))
            + voice
            + (", virtual time" if args.virtual_time else ", real time")
        )
        session = _converse(agent, source, None, config, args, view)
        if args.local:
            _print_heard(source, session, view)
        _save(session, args, view)
    return 0


def _print_heard(source: SimSpeechSource, session: SessionMetrics, view: LiveView) -> None:
    """Each line the user said beside what the ASR heard of it."""
    table = Table("said", "heard", box=None, padding=(0, 2, 0, 0), header_style="bold")
    for line in said_and_heard(source.said, session.turns):
        mark = "[green]=[/]" if line.exact else "[yellow]≠[/]"
        heard = "[dim](not heard)[/]" if line.heard is None else escape(line.heard)
        table.add_row(escape(line.said), f"{mark} {heard}")
    view.print(table)


def _run(args: argparse.Namespace) -> int:
    check_paths(
        inputs={"--input": args.input, "--config": args.config},
        outputs={"--output": args.output, **_outputs(args)},
    )
    config = load_config(args.config)
    _check_virtual_time(config, args)
    source = WavSource(args.input, config.agent.sample_rate, config.agent.frame_ms)
    agent = VoiceAgent.from_config(config)
    sink = WavSink(args.output, config.agent.sample_rate) if args.output else None
    with LiveView(console, _verbosity(args), duration_ms=source.duration_ms) as view:
        view.print(
            f"[bold]voxpipe run[/]: {escape(str(args.input))} "
            f"({source.duration_ms / 1000:.1f} s) through {escape(_backends(config))}"
        )
        session = _converse(agent, source, sink, config, args, view)
        if not session.turns:
            view.print(
                "[yellow]No speech was answered: check the input level "
                "(\\[vad] threshold_db) or the ASR settings.[/]"
            )
        if args.output:
            view.print(f"agent audio: {escape(str(args.output))}")
        _save(session, args, view)
    return 0


def _converse(
    agent: VoiceAgent,
    source: AudioSource,
    sink: AudioSink | None,
    config: AgentConfig,
    args: argparse.Namespace,
    view: LiveView,
) -> SessionMetrics:
    """Run one session, showing each turn as it ends and a status line meanwhile."""
    recorder = CallRecorder(args.record, config.agent.sample_rate) if args.record else None
    started: list[Session] = []

    async def session() -> SessionMetrics:
        async with agent:
            conversation = agent.session(source, sink, recorder=recorder)
            conversation.on("state", view.on_state)
            conversation.on("turn", view.on_turn)
            conversation.on("budget", view.on_budget)
            view.follow(conversation)
            started.append(conversation)
            return await conversation.run()

    try:
        metrics = _run_loop(session, virtual_time=args.virtual_time)
    except (VoxpipeError, Stopped) as ended:
        if started:  # the turns until then, and why it ended, are still worth keeping
            if isinstance(ended, Stopped):
                started[0].metrics.end_reason = ended.reason
            _save(started[0].metrics, args, view)
        raise
    view.summary(metrics)
    if args.record:
        view.print(f"call recording: {escape(str(args.record))}")
    return metrics


def _run_loop(
    main: Callable[[], Coroutine[Any, Any, SessionMetrics]], *, virtual_time: bool
) -> SessionMetrics:
    freeze_gc()
    factory = loop_factory("virtual" if virtual_time else None)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_stoppable(main))


#: What a signal that stops a session means: (the session's end reason, the exit code).
STOPPING_SIGNALS = {"SIGINT": ("interrupted", 130), "SIGTERM": ("terminated", 143)}


class Stopped(Exception):
    """A signal stopped the session: SIGINT (Ctrl-C) or SIGTERM."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal = signal_name
        self.reason, self.exit_code = STOPPING_SIGNALS[signal_name]


async def _stoppable(
    main: Callable[[], Coroutine[Any, Any, SessionMetrics]],
) -> SessionMetrics:
    """Run ``main``; SIGINT or SIGTERM cancel it (the session closes what it opened) and
    raise ``Stopped``, so the outputs can still be written."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    caught: list[str] = []

    def stop(name: str) -> None:
        caught.append(name)
        if task is not None:
            task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        return await main()
    except asyncio.CancelledError:
        if caught:
            raise Stopped(caught[0]) from None
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _check_virtual_time(config: AgentConfig, args: argparse.Namespace) -> None:
    """``--virtual-time`` only with backends that wait on nothing but the loop's timers: on
    a simulated clock, a network wait would time out at once or report absurd latencies."""
    if not args.virtual_time:
        return
    for kind in ("asr", "llm", "tts", "vad"):
        for spec, _ in config.chain(kind):
            if not spec.virtual_time:
                raise UsageError(
                    f"{config.source}: --virtual-time needs backends that run on a simulated "
                    f"clock; the {kind} backend {spec.name!r} waits on a network or a device, "
                    "where simulated time would report fake timeouts and latencies. Drop "
                    "--virtual-time, or use the sim backends."
                )


def _backends(config: AgentConfig) -> str:
    return " ".join(f"{k}={getattr(config, k).backend}" for k in ("asr", "llm", "tts"))


def _outputs(args: argparse.Namespace) -> dict[str, Path | None]:
    return {"--json": args.json, **_plots(args.plot), "--record": args.record}


def _plots(plot: Path | None) -> dict[str, Path | None]:
    """``--plot`` writes a timeline there and a summary beside it: both are outputs."""
    return {"--plot": plot, "--plot's summary": summary_path(plot) if plot else None}


def check_paths(inputs: dict[str, Path | None], outputs: dict[str, Path | None]) -> None:
    """Refuse, before anything runs, outputs that would overwrite an input or each other,
    that are directories or cannot be created, and a plot format matplotlib cannot write."""
    given_in = {flag: path for flag, path in inputs.items() if path is not None}
    given_out = {flag: path for flag, path in outputs.items() if path is not None}
    seen: dict[Path, str] = {p.resolve(): flag for flag, p in given_in.items()}
    for flag, path in given_out.items():
        where = path.resolve()
        if where in seen:
            what = "input" if seen[where] in given_in else "output"
            raise UsageError(
                f"{flag} {path} is the same file as {seen[where]}: the {what} would be "
                "overwritten. Choose another path."
            )
        seen[where] = flag
        if path.is_dir():
            raise UsageError(f"{flag} {path}: is a directory; give a file path.")
        parent = where.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise UsageError(f"{flag} {path}: cannot be created in {parent}.")
    plot = given_out.get("--plot")
    if plot is not None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
        if plot.suffix.lower().lstrip(".") not in formats:
            raise UsageError(
                f"--plot {plot}: cannot write a {plot.suffix or 'suffix-less'} file; "
                f"use one of: {', '.join('.' + f for f in sorted(formats))}."
            )


def _save(session: SessionMetrics, args: argparse.Namespace, view: LiveView) -> None:
    if args.json:
        session.to_json(args.json)
        view.print(f"metrics: {escape(str(args.json))}")
    if args.plot:
        _plot(session, args.plot, view)


def _plot(session: SessionMetrics, path: Path, view: LiveView) -> None:
    timeline, summary = plot_session(session, path)
    view.print(f"timeline: {escape(str(timeline))}")
    view.print(f"summary plot: {escape(str(summary))}")


def _plugins(args: argparse.Namespace) -> int:
    registry = default_registry()
    backends = registry.backends()
    if args.json:
        rows = [
            {
                "kind": b.kind,
                "name": b.name,
                "distribution": b.distribution,
                "version": b.version,
                "api_version": b.api_version,
                "status": b.status,
            }
            for b in backends
        ]
        failures = [
            {
                "plugin": f.plugin,
                "distribution": f.distribution,
                "version": f.version,
                "error": f.error,
            }
            for f in registry.failures
        ]
        print(json.dumps({"backends": rows, "failures": failures}, indent=2))
        return 0
    table = Table(title="voxpipe backends")
    for column in ("kind", "name", "distribution", "version", "api", "status"):
        table.add_column(column)
    for b in backends:
        status = "[green]ok[/]" if b.usable else f"[red]{escape(b.status)}[/]"
        table.add_row(b.kind, b.name, b.distribution, b.version, str(b.api_version), status)
    for f in registry.failures:
        error = f"[red]failed to load: {escape(f.error)}[/]"
        table.add_row("?", f.plugin, f.distribution, f.version, "", error)
    console.print(table)
    return 0


def _report(args: argparse.Namespace) -> int:
    check_paths(inputs={"metrics": args.metrics}, outputs=_plots(args.plot))
    try:
        data = json.loads(args.metrics.read_text())
        session = SessionMetrics.from_dict(data)
    except FileNotFoundError:
        raise UsageError(f"{args.metrics}: no such file.") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise UsageError(f"{args.metrics}: cannot be read ({exc.strerror}).") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{args.metrics}: not a voxpipe metrics file ({exc}); "
            "write one with `voxpipe demo --json FILE`."
        ) from None
    with LiveView(console, _verbosity(args), status=False) as view:
        for turn in session.turns:
            view.print(turn_table(turn) if args.verbose else turn_line(turn))
        view.summary(session)
        if args.plot:
            _plot(session, args.plot, view)
    return 0


if __name__ == "__main__":
    sys.exit(main())
