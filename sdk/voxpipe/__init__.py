"""voxpipe: streaming voice agents with honest, budgeted latency and pluggable backends."""

from voxpipe.agent import VoiceAgent
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
from voxpipe.events import AgentState, BudgetMiss, Interruption, StateChange
from voxpipe.hookspecs import PLUGIN_API_VERSION, BackendContext, BackendSpec, hookimpl
from voxpipe.io import CallRecorder, Line, NullSink, SimSpeechSource, WavSink, WavSource
from voxpipe.metrics import SessionMetrics, TurnMetrics
from voxpipe.protocols import (
    ASR,
    LLM,
    TTS,
    VAD,
    Alignment,
    ASRStream,
    AudioSink,
    AudioSource,
    EndOfTurn,
    Finish,
    Message,
    SpeechStarted,
    StreamingTTS,
    TextDelta,
    ToolCall,
    Transcript,
    Usage,
    Word,
)
from voxpipe.registry import Registry, default_registry
from voxpipe.reply import Reply
from voxpipe.session import Session
from voxpipe.text import PhraseChunker, PhrasePolicy
from voxpipe.turns import TurnSettings
from voxpipe.vad import EnergyVAD, Utterance

__version__ = "0.2.0"

__all__ = [
    "ASR",
    "DEMO_BUDGETS",
    "LLM",
    "PLUGIN_API_VERSION",
    "TTS",
    "VAD",
    "ASRStream",
    "AgentConfig",
    "AgentState",
    "Alignment",
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
    "EndOfTurn",
    "EnergyVAD",
    "Finish",
    "Interruption",
    "LatencyBudgets",
    "Line",
    "Message",
    "NullSink",
    "PhraseChunker",
    "PhrasePolicy",
    "PluginError",
    "ProviderError",
    "RateLimited",
    "Registry",
    "Reply",
    "Session",
    "SessionClock",
    "SessionMetrics",
    "SimSpeechSource",
    "SpeechStarted",
    "StateChange",
    "StreamingTTS",
    "TextDelta",
    "ToolCall",
    "Transcript",
    "TurnMetrics",
    "TurnSettings",
    "Usage",
    "UsageError",
    "Utterance",
    "VoiceAgent",
    "VoxpipeError",
    "WavSink",
    "WavSource",
    "Word",
    "default_registry",
    "hookimpl",
    "load_config",
    "read_speech",
    "read_wav",
    "write_wav",
]
