"""The call recorder streams to disk: the file equals what the in-memory recorder wrote
(normal calls, barge-in cuts, resampled frames), memory stays flat over an hour, late audio
is dropped with one warning, close is idempotent and a cancelled session leaves a valid WAV."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from voxpipe import AudioFrame, CallRecorder, Line, SimSpeechSource, VoiceAgent, write_wav
from voxpipe.audio import Int16Array
from voxpipe.errors import AudioFormatError, UsageError
from voxpipe.io.recorder import BLOCK_MS, WINDOW_MS, Track

RATE = 16_000
FRAME_MS = 20.0


@pytest.fixture(autouse=True)
def _resampled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """soxr dithers its int16 output, so resampling one frame twice can differ by 1 LSB:
    here each frame is resampled once, and both recorders get the same samples."""
    resampled = AudioFrame.resampled
    done: dict[tuple[int, int], AudioFrame] = {}
    keep: list[AudioFrame] = []  # the frames keyed by id stay alive

    def once(frame: AudioFrame, sample_rate: int) -> AudioFrame:
        key = (id(frame), sample_rate)
        if key not in done:
            keep.append(frame)
            done[key] = resampled(frame, sample_rate)
        return done[key]

    monkeypatch.setattr(AudioFrame, "resampled", once)


# --- the reference: the recorder as it was, holding the whole call in memory --------------


class ReferenceTrack:
    """The old ``Track``: every frame kept, rendered at the end."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pieces: list[tuple[int, Int16Array]] = []
        self.end_sample = 0

    def add(self, frame: AudioFrame) -> None:
        samples = (
            frame.samples
            if frame.sample_rate == self.sample_rate
            else frame.resampled(self.sample_rate).samples
        )
        at = round(frame.start_ms * self.sample_rate / 1000.0)
        self._pieces.append((at, samples))
        self.end_sample = max(self.end_sample, at + len(samples))

    def cut(self, at_ms: float) -> None:
        at = round(at_ms * self.sample_rate / 1000.0)
        while self._pieces and self._pieces[-1][0] >= at:
            self._pieces.pop()
        if self._pieces:
            start, samples = self._pieces[-1]
            if start + len(samples) > at:
                self._pieces[-1] = (start, samples[: at - start])
        self.end_sample = max((s + len(x) for s, x in self._pieces), default=0)

    def render(self, length: int | None = None) -> Int16Array:
        out = np.zeros(self.end_sample if length is None else length, dtype=np.int32)
        for at, samples in self._pieces:
            piece = samples[: max(len(out) - at, 0)]
            out[at : at + len(piece)] += piece
        return np.clip(out, -32768, 32767).astype(np.int16)


class ReferenceRecorder:
    def __init__(self, path: Path, sample_rate: int = RATE) -> None:
        self.path = path
        self.user = ReferenceTrack(sample_rate)
        self.agent = ReferenceTrack(sample_rate)

    def close(self) -> Path:
        length = max(self.user.end_sample, self.agent.end_sample)
        stereo = np.stack([self.user.render(length), self.agent.render(length)], axis=1)
        write_wav(self.path, stereo, self.user.sample_rate)
        return self.path


# --- calls as the session makes them: frames and cuts in the order they arrive -------------


@dataclass
class Call:
    """A call's timeline: (arrival ms, order, what, payload) in arrival order."""

    events: list[tuple[float, int, str, Any]] = field(default_factory=list)

    def user(self, duration_ms: float, speech: list[tuple[float, float]], seed: int = 1) -> None:
        """Continuous 20 ms input frames, each arriving at its end; voiced in ``speech``."""
        rng = np.random.default_rng(seed)
        n = round(RATE * FRAME_MS / 1000)
        for k in range(round(duration_ms / FRAME_MS)):
            start = k * FRAME_MS
            voiced = any(a <= start < b for a, b in speech)
            samples = (
                rng.integers(-6000, 6000, n, dtype=np.int16) if voiced else np.zeros(n, np.int16)
            )
            self._add(start + FRAME_MS, "user", AudioFrame(samples, RATE, start))

    def reply(
        self,
        start_ms: float,
        duration_ms: float,
        *,
        cut_at_ms: float | None = None,
        rate: int = RATE,
        seed: int = 2,
    ) -> None:
        """Frames placed back to back from ``start_ms``, each arriving at its start; with
        ``cut_at_ms`` the output stops there (mid-frame) and the rest never comes."""
        rng = np.random.default_rng(seed)
        n = round(rate * FRAME_MS / 1000)
        at = start_ms
        while at < start_ms + duration_ms:
            if cut_at_ms is not None and at > cut_at_ms:
                break
            samples = rng.integers(-9000, 9000, n, dtype=np.int16)
            self._add(at, "agent", AudioFrame(samples, rate, at))
            at += FRAME_MS
        if cut_at_ms is not None:
            self._add(cut_at_ms, "cut", cut_at_ms)

    def _add(self, at: float, what: str, payload: Any) -> None:
        self.events.append((at, len(self.events), what, payload))

    def play(self, *recorders: Any) -> None:
        for _, _, what, payload in sorted(self.events, key=lambda e: (e[0], e[1])):
            for recorder in recorders:
                if what == "user":
                    recorder.user.add(payload)
                elif what == "agent":
                    recorder.agent.add(payload)
                else:
                    recorder.agent.cut(payload)


def normal_call() -> Call:
    call = Call()
    call.user(30_000, speech=[(400, 2_000), (9_000, 11_500), (20_000, 21_000)])
    call.reply(2_870, 4_000)
    call.reply(12_400, 6_000, rate=24_000)  # a TTS at another rate: resampled as it comes
    call.reply(21_900, 7_000)
    return call


def barge_in_call() -> Call:
    call = Call()
    call.user(26_000, speech=[(400, 2_000), (4_380, 5_500), (14_000, 15_000)])
    call.reply(2_870, 6_000, cut_at_ms=4_681.3)  # the user talks over it: cut mid-frame
    call.reply(6_400, 5_000, cut_at_ms=6_400.0)  # cut at the very start of its first frame
    call.reply(7_000, 5_000, rate=24_000, cut_at_ms=9_333.3)
    call.reply(15_900, 9_000, cut_at_ms=24_990.0)
    return call


def both_ways(call: Call, tmp_path: Path, **options: Any) -> tuple[bytes, bytes]:
    streamed, kept = tmp_path / "streamed.wav", tmp_path / "kept.wav"
    recorder, reference = CallRecorder(streamed, RATE, **options), ReferenceRecorder(kept)
    call.play(recorder, reference)
    assert recorder.user.taken > 10 * RATE  # most of it was on disk before close
    recorder.close()
    reference.close()
    return streamed.read_bytes(), kept.read_bytes()


@pytest.mark.parametrize("make_call", [normal_call, barge_in_call])
def test_the_file_is_what_the_in_memory_recorder_wrote(make_call: Any, tmp_path: Path) -> None:
    streamed, kept = both_ways(make_call(), tmp_path)
    assert len(streamed) > 44 + 20 * RATE * 4  # well past the window: written as it went
    assert streamed == kept


@pytest.mark.parametrize("window_ms", [100.0, 500.0, 2_000.0])
def test_any_window_that_covers_a_frame_gives_the_same_file(
    window_ms: float, tmp_path: Path
) -> None:
    streamed, kept = both_ways(barge_in_call(), tmp_path, window_ms=window_ms)
    assert streamed == kept


def test_a_cut_in_the_window_after_a_minute_of_audio_was_written(tmp_path: Path) -> None:
    call = Call()
    call.user(70_000, speech=[(1_000, 3_000)])
    call.reply(4_000, 65_000, cut_at_ms=64_321.7)  # a minute-long answer, cut near its end
    recorder = CallRecorder(tmp_path / "streamed.wav", RATE)
    reference = ReferenceRecorder(tmp_path / "kept.wav")
    call.play(recorder, reference)
    assert recorder.user.taken > 55 * RATE  # most of the call is on disk already
    recorder.close()
    reference.close()
    assert recorder.late_count == 0
    assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "kept.wav").read_bytes()
    stereo = soundfile.read(tmp_path / "streamed.wav", dtype="int16")[0]
    cut = round(64_321.7 * RATE / 1000)
    assert stereo[cut - 1, 1] != 0 and not stereo[cut:, 1].any()


def test_a_cut_that_leaves_only_written_silence_at_the_end(tmp_path: Path) -> None:
    """The silence after the last answer was written, then the frame after it was cut at its
    start: the file ends where the audio ends, as the in-memory recorder's did."""
    recorder = CallRecorder(tmp_path / "streamed.wav", RATE, window_ms=1_000)
    reference = ReferenceRecorder(tmp_path / "kept.wav")
    call = Call()
    call.reply(0, 1_000)
    call.reply(20_000, 20, cut_at_ms=20_000)
    call.play(recorder, reference)
    assert recorder.agent.taken > RATE  # silence was written past the end of the audio
    recorder.close()
    reference.close()
    assert soundfile.info(tmp_path / "streamed.wav").frames == RATE
    assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "kept.wav").read_bytes()


def test_the_file_on_disk_is_readable_while_the_call_goes(tmp_path: Path) -> None:
    """The header is kept up to date: a crash before close still leaves a readable WAV."""
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, RATE)
    reference = ReferenceRecorder(tmp_path / "kept.wav")
    normal_call().play(recorder, reference)
    written = recorder.user.taken
    so_far, rate = soundfile.read(path, dtype="int16")
    assert rate == RATE and so_far.shape == (written, 2)
    length = max(reference.user.end_sample, reference.agent.end_sample)
    expected = np.stack([reference.user.render(length), reference.agent.render(length)], 1)
    assert np.array_equal(so_far, expected[:written])
    recorder.close()


# --- memory ---------------------------------------------------------------------------------


def hour_of_frames(rate: int) -> Iterator[tuple[str, Any]]:
    """An hour of a call in arrival order: the user's 20 ms frames all along, the agent
    answering 6 s in every 10 s, every third answer cut by a barge-in."""
    n = round(rate * FRAME_MS / 1000)
    voice, speech = np.full(n, 1_000, np.int16), np.full(n, 3_000, np.int16)
    for k in range(round(3_600_000 / FRAME_MS)):
        start = k * FRAME_MS
        in_cycle = start % 10_000
        barged = (start // 10_000) % 3 == 0
        if 3_000 <= in_cycle < 9_000 and not (barged and in_cycle > 5_010):
            yield "agent", AudioFrame(speech, rate, start)
        if barged and in_cycle == 5_000:
            yield "cut", start + 7.5
        yield "user", AudioFrame(voice, rate, start)  # arrives at its end


def test_memory_stays_flat_over_an_hour(tmp_path: Path) -> None:
    """The samples held never exceed the window and a block, all hour long; and what the
    recorder allocates over ten minutes of it (traced from minute 25 to 35) stays small and
    is given back."""
    rate = 8_000  # the same frame count as at 16 kHz, half the disk
    path = tmp_path / "hour.wav"
    recorder = CallRecorder(path, rate)
    held_most, peak, kept = 0, 0, 0
    traced = (round(1_500_000 / FRAME_MS), round(2_100_000 / FRAME_MS))  # user frame counts
    users = 0
    for i, (what, item) in enumerate(hour_of_frames(rate)):
        if what == "user":
            recorder.user.add(item)
            users += 1
            if users == traced[0]:
                tracemalloc.start()
            elif users == traced[1]:
                kept, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
        elif what == "agent":
            recorder.agent.add(item)
        else:
            recorder.agent.cut(item)
        if i % 50 == 0:
            held_most = max(held_most, recorder.buffered_samples)
    recorder.close()
    window = round((WINDOW_MS + BLOCK_MS + 2 * FRAME_MS) * rate / 1000)
    assert held_most <= 2 * window  # both tracks, never more than the window and a block
    assert peak < 2_000_000, f"tracemalloc peak {peak / 1e6:.2f} MB"
    assert kept < 500_000, f"{kept / 1e6:.2f} MB still allocated after ten minutes"
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.frames) == (rate, 2, 3_600 * rate)
    assert recorder.late_count == 0


# --- late audio, paths, closing ---------------------------------------------------------------


def test_a_frame_for_audio_already_written_is_dropped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", RATE, window_ms=1_000)
    call = Call()
    call.user(5_000, speech=[(0, 5_000)])
    call.play(recorder)
    assert recorder.user.taken >= 3 * RATE
    late = np.full(320, 5_000, np.int16)
    with caplog.at_level(logging.WARNING, logger="voxpipe.io.recorder"):
        recorder.agent.add(AudioFrame(late, RATE, 1_000.0))  # written 2 s ago
        recorder.agent.add(AudioFrame(late, RATE, 1_020.0))
        recorder.agent.cut(500.0)  # nothing to lose there: not late
        recorder.user.cut(2_000.0)  # the user's audio there was written
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "call.wav: late agent frame at 1000 ms" in message
    assert "audio up to 3000 ms was written" in message
    assert recorder.late_count == 3
    recorder.close()
    stereo = soundfile.read(tmp_path / "call.wav", dtype="int16")[0]
    assert not stereo[:, 1].any()  # dropped, not written over the past


def test_a_frame_partly_written_keeps_its_unwritten_part(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", RATE, window_ms=1_000)
    call = Call()
    call.user(3_000, speech=[])
    call.play(recorder)
    taken = recorder.user.taken
    recorder.agent.add(AudioFrame(np.full(800, 7, np.int16), RATE, (taken - 400) * 1000 / RATE))
    recorder.close()
    agent = soundfile.read(tmp_path / "call.wav", dtype="int16")[0][:, 1]
    assert np.flatnonzero(agent).tolist() == list(range(taken, taken + 400))
    assert recorder.late_count == 1


def test_close_is_idempotent_and_ignores_frames_after_it(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = CallRecorder(path, RATE)
    normal_call().play(recorder)
    assert recorder.close() == path
    content = path.read_bytes()
    assert recorder.close() == path
    recorder.user.add(AudioFrame(np.ones(320, np.int16), RATE, 40_000.0))
    recorder.agent.cut(1_000.0)
    assert recorder.close() == path
    assert path.read_bytes() == content
    assert recorder.closed and recorder.buffered_samples == 0


def test_an_empty_call_is_an_empty_wav(tmp_path: Path) -> None:
    path = CallRecorder(tmp_path / "call.wav", RATE).close()
    info = soundfile.info(path)
    assert (info.format, info.subtype, info.channels, info.frames) == ("WAV", "PCM_16", 2, 0)


def test_the_file_is_opened_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "call.wav"  # the folder is created, as write_wav did
    recorder = CallRecorder(path, RATE)
    assert path.is_file()
    recorder.close()


@pytest.mark.parametrize("name", ["call.mp3", "call"])
def test_a_path_that_cannot_hold_pcm_fails_at_construction(name: str, tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="cannot be written as 16-bit PCM"):
        CallRecorder(tmp_path / name, RATE)


def test_an_uncreatable_path_fails_at_construction(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UsageError, match="cannot be written"):
        CallRecorder(tmp_path / "file" / "call.wav", RATE)


def test_a_track_alone_keeps_everything() -> None:
    track = Track(RATE)
    for k in range(500):  # 10 s: no writer, nothing leaves
        track.add(AudioFrame(np.full(320, 1, np.int16), RATE, k * FRAME_MS))
    assert track.buffered_samples == 500 * 320
    assert len(track.render()) == 500 * 320 and track.render().all()


# --- in a session -------------------------------------------------------------------------------


class Tee:
    """A recorder that records into the streaming recorder and the reference at once."""

    def __init__(self, *recorders: Any) -> None:
        self.recorders = recorders
        self.user = _TeeTrack([r.user for r in recorders])
        self.agent = _TeeTrack([r.agent for r in recorders])

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close()


@dataclass
class _TeeTrack:
    tracks: list[Any]

    def add(self, frame: AudioFrame) -> None:
        for track in self.tracks:
            track.add(frame)

    def cut(self, at_ms: float) -> None:
        for track in self.tracks:
            track.cut(at_ms)


def long_talk() -> SimSpeechSource:
    return SimSpeechSource(
        [
            "What's the weather like?",
            Line("wait stop please", after="answer_start", delay_ms=1500),
            "And tomorrow?",
            "Tell me the time please.",
            Line("hold on", after="answer_start", delay_ms=900),
            "Thanks.",
        ]
    )


@pytest.mark.looptime
async def test_a_session_with_barge_ins_records_what_the_in_memory_recorder_did(
    make_agent: Any, tmp_path: Path
) -> None:
    streamed = CallRecorder(tmp_path / "streamed.wav", RATE)
    reference = ReferenceRecorder(tmp_path / "kept.wav")
    agent: VoiceAgent = make_agent()
    session = await agent.run(long_talk(), recorder=Tee(streamed, reference))  # type: ignore[arg-type]
    assert sum(turn.interrupted for turn in session.turns) == 2
    assert soundfile.info(tmp_path / "streamed.wav").duration > 3 * WINDOW_MS / 1000
    assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "kept.wav").read_bytes()
    assert streamed.late_count == 0


@pytest.mark.looptime
async def test_a_cancelled_session_leaves_a_valid_wav_of_the_call_so_far(
    make_agent: Any, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    agent: VoiceAgent = make_agent()
    run = asyncio.ensure_future(agent.run(long_talk(), recorder=CallRecorder(path, RATE)))
    await asyncio.sleep(12.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    stereo, rate = soundfile.read(path, dtype="int16")
    assert rate == RATE and stereo.shape[1] == 2
    assert 11.9 <= len(stereo) / rate <= 12.1
    assert stereo[:, 0].any() and stereo[:, 1].any()
