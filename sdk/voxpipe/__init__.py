"""voxpipe: streaming voice agents with honest, budgeted latency and pluggable backends."""

from voxpipe.agent import AgentState, BudgetMiss, StateChange, VoiceAgent
from voxpipe.audio import AudioFrame, read_speech, read_wav, write_wav
from voxpipe.budgets import DEMO_BUDGETS, LatencyBudgets
from voxpipe.clock import SessionClock
from voxpipe.config import AgentConfig, load_config
from voxpipe.errors import (
    AudioFormatError,
    AuthError,
    BackendNotFound,
    ConfigError,
    PluginError,
    ProviderError,
    RateLimited,
    UsageError,
    VoxpipeError,
)
from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendContext, BackendSpec, hookimpl
from voxpipe.io import CallRecorder, NullSink, SimSpeechSource, WavSink, WavSource
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import ASR, LLM, TTS, AudioSink, AudioSource, Message, Transcript
from voxpipe.registry import Registry, default_registry
from voxpipe.text import PhraseChunker, PhrasePolicy

__version__ = "0.1.0"

__all__ = [
    "ASR",
    "DEMO_BUDGETS",
    "LLM",
    "PLUGIN_API_VERSION",
    "TTS",
    "AgentConfig",
    "AgentState",
    "AudioFormatError",
    "AudioFrame",
    "AudioSink",
    "AudioSource",
    "AuthError",
    "BackendContext",
    "BackendNotFound",
    "BackendSpec",
    "BudgetMiss",
    "CallRecorder",
    "ConfigError",
    "LatencyBudgets",
    "Message",
    "NullSink",
    "PhraseChunker",
    "PhrasePolicy",
    "PluginError",
    "ProviderError",
    "RateLimited",
    "Registry",
    "SessionClock",
    "SessionMetrics",
    "SimSpeechSource",
    "StateChange",
    "Transcript",
    "TurnMetrics",
    "UsageError",
    "VoiceAgent",
    "VoxpipeError",
    "WavSink",
    "WavSource",
    "default_registry",
    "hookimpl",
    "load_config",
    "read_speech",
    "read_wav",
    "write_wav",
]
