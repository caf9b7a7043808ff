"""AudioFrame, conversions, resampling, framing and WAV I/O (voxpipe.audio)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from voxpipe.audio import (
    SILENCE_DB,
    AudioFrame,
    StreamResampler,
    float_to_int16,
    read_speech,
    read_wav,
    resample,
    split_frames,
    to_mono,
    write_wav,
)
from voxpipe.errors import AudioFormatError, UsageError


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def riff_wav(
    format_tag: int, bits: int, data: bytes, channels: int = 1, rate: int = 16_000
) -> bytes:
    """A minimal RIFF/WAVE file, written byte by byte (for headers `wave` will not write)."""
    block_align = channels * ((bits + 7) // 8)
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_raw_wav(
    path: Path, raw: bytes, sampwidth: int, rate: int = 16_000, channels: int = 1
) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


# --- AudioFrame --------------------------------------------------------------------------


def test_frame_duration_and_end() -> None:
    frame = AudioFrame(np.zeros(320, dtype=np.int16), 16_000, start_ms=1_000.0)
    assert frame.duration_ms == pytest.approx(20.0)
    assert frame.end_ms == pytest.approx(1_020.0)
    odd = AudioFrame(np.zeros(441, dtype=np.int16), 44_100, start_ms=5.0)
    assert odd.duration_ms == pytest.approx(10.0)
    assert odd.end_ms == pytest.approx(15.0)


def test_energy_of_full_scale_sine_is_about_minus_3_dbfs() -> None:
    frame = AudioFrame(tone(440, 16_000, 1.0, amplitude=1.0), 16_000)
    assert frame.energy_db == pytest.approx(-3.01, abs=0.05)


def test_energy_scales_with_amplitude() -> None:
    loud = AudioFrame(tone(440, 16_000, 0.5, amplitude=1.0), 16_000).energy_db
    quiet = AudioFrame(tone(440, 16_000, 0.5, amplitude=0.1), 16_000).energy_db
    assert loud - quiet == pytest.approx(20.0, abs=0.1)


@pytest.mark.parametrize("n", [0, 1, 320])
def test_energy_of_silence_is_silence_db(n: int) -> None:
    assert AudioFrame(np.zeros(n, dtype=np.int16), 16_000).energy_db == SILENCE_DB


def test_at_moves_the_frame_and_keeps_samples() -> None:
    samples = tone(440, 16_000, 0.02)
    frame = AudioFrame(samples, 16_000, start_ms=0.0, script="hello")
    moved = frame.at(250.0)
    assert moved.start_ms == 250.0
    assert moved.end_ms == pytest.approx(270.0)
    assert moved.samples is samples
    assert moved.sample_rate == 16_000
    assert moved.script == "hello"
    assert frame.start_ms == 0.0  # the original is unchanged
    assert moved.energy_db == pytest.approx(frame.energy_db)


def test_resampled_frame_keeps_start_and_duration() -> None:
    frame = AudioFrame(tone(440, 48_000, 0.1), 48_000, start_ms=40.0, script="hi")
    assert frame.resampled(48_000) is frame
    out = frame.resampled(16_000)
    assert out.sample_rate == 16_000
    assert out.start_ms == 40.0
    assert out.script == "hi"
    assert abs(len(out.samples) - 1_600) <= 1


def test_from_float_stereo_to_mono_int16() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, 0.5], [-1.0, -1.0], [0.25, -0.25]])
    frame = AudioFrame.from_float(stereo, 8_000, start_ms=12.0)
    assert frame.samples.dtype == np.int16
    assert frame.samples.ndim == 1
    assert frame.samples.tolist() == [16384, 16384, -32767, 0]
    assert frame.sample_rate == 8_000
    assert frame.start_ms == 12.0


def test_from_float_clips_out_of_range() -> None:
    frame = AudioFrame.from_float([2.0, 1.0, -1.0, -7.5, 0.0], 16_000)
    assert frame.samples.tolist() == [32767, 32767, -32767, -32767, 0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_float_to_int16_rejects_non_finite(bad: float) -> None:
    with pytest.raises(AudioFormatError, match=r"NaN or infinite") as info:
        float_to_int16([0.0, bad, 0.5, bad], source="mic.raw")
    message = str(info.value)
    assert "mic.raw" in message
    assert "2 sample(s)" in message
    assert isinstance(info.value, UsageError)


def test_from_float_rejects_nan() -> None:
    with pytest.raises(AudioFormatError, match="NaN"):
        AudioFrame.from_float(np.array([[0.0, np.nan]]), 16_000)


def test_to_mono() -> None:
    mono = np.array([1, 2, 3], dtype=np.int16)
    assert to_mono(mono) is mono
    single = np.array([[1], [2], [3]], dtype=np.int16)
    assert to_mono(single).tolist() == [1, 2, 3]
    stereo = np.array([[100, 300], [-100, -300], [32767, 32767]], dtype=np.int16)
    mixed = to_mono(stereo)
    assert mixed.dtype == np.int16
    assert mixed.tolist() == [200, -200, 32767]  # no int16 overflow while averaging
    floats = to_mono(np.array([[0.5, 0.0], [1.0, -1.0]]))
    assert floats.dtype == np.float64
    assert floats.tolist() == [0.25, 0.0]
    with pytest.raises(AudioFormatError, match=r"1-D or \(samples, channels\)"):
        to_mono(np.zeros((2, 2, 2)))


# --- resampling --------------------------------------------------------------------------


def test_resample_keeps_duration_and_pitch() -> None:
    source = tone(440, 44_100, 1.0)
    out = resample(source, 44_100, 16_000)
    assert out.dtype == np.int16
    assert abs(len(out) - 16_000) <= 1
    assert dominant_hz(out, 16_000) == pytest.approx(440, abs=2)
    # Level is preserved too (HQ low-pass far above 440 Hz).
    before = AudioFrame(source, 44_100).energy_db
    after = AudioFrame(out, 16_000).energy_db
    assert after == pytest.approx(before, abs=0.2)


def test_resample_same_rate_or_empty_is_identity() -> None:
    samples = tone(440, 16_000, 0.01)
    assert resample(samples, 16_000, 16_000) is samples
    empty = np.zeros(0, dtype=np.int16)
    assert len(resample(empty, 44_100, 16_000)) == 0


def test_stream_resampler_chunks_match_whole() -> None:
    source = tone(440, 44_100, 1.0)
    whole = resample(source, 44_100, 16_000)
    stream = StreamResampler(44_100, 16_000)
    chunk = 882  # 20 ms
    parts = [
        stream.push(source[i : i + chunk], last=i + chunk >= len(source))
        for i in range(0, len(source), chunk)
    ]
    assert all(p.dtype == np.int16 for p in parts)
    joined = np.concatenate(parts)
    assert abs(len(joined) - len(whole)) <= 2
    assert dominant_hz(joined, 16_000) == pytest.approx(440, abs=2)
    # No clicks at chunk edges: the streamed signal tracks the whole-buffer one.
    n = min(len(joined), len(whole))
    middle = slice(200, n - 200)
    diff = joined[middle].astype(np.int32) - whole[middle].astype(np.int32)
    assert np.max(np.abs(diff)) < 100


def test_stream_resampler_same_rate_passes_through() -> None:
    stream = StreamResampler(16_000, 16_000)
    samples = tone(440, 16_000, 0.02)
    assert stream.push(samples) is samples


# --- split_frames ------------------------------------------------------------------------


def test_split_frames_pads_last_and_steps_start() -> None:
    samples = np.arange(1, 801, dtype=np.int16)  # 50 ms at 16 kHz
    frames = split_frames(samples, 16_000, 20, start_ms=100.0)
    assert len(frames) == 3
    assert [f.start_ms for f in frames] == [100.0, 120.0, 140.0]
    assert all(len(f.samples) == 320 and f.sample_rate == 16_000 for f in frames)
    assert frames[0].samples[0] == 1
    assert frames[1].samples[0] == 321
    last = frames[2].samples
    assert last[:160].tolist() == list(range(641, 801))
    assert not last[160:].any()
    assert np.concatenate([f.samples for f in frames])[:800].tolist() == samples.tolist()


def test_split_frames_exact_and_empty() -> None:
    frames = split_frames(np.ones(640, dtype=np.int16), 16_000, 20)
    assert len(frames) == 2
    assert frames[1].end_ms == pytest.approx(40.0)
    assert split_frames(np.zeros(0, dtype=np.int16), 16_000, 20) == []


def test_split_frames_rejects_too_short_frames() -> None:
    with pytest.raises(ValueError, match="too short"):
        split_frames(np.ones(10, dtype=np.int16), 8_000, 0.01)


# --- WAV I/O -----------------------------------------------------------------------------


def test_wav_round_trip_mono(tmp_path: Path) -> None:
    samples = tone(440, 16_000, 0.1)
    samples[0], samples[1] = -32768, 32767
    path = tmp_path / "sub" / "mono.wav"  # write_wav creates the folder
    write_wav(path, samples, 16_000)
    data, rate = read_wav(path)
    assert rate == 16_000
    assert data.shape == (1_600, 1)
    assert data.dtype == np.int16
    assert np.array_equal(data[:, 0], samples)


def test_wav_round_trip_stereo(tmp_path: Path) -> None:
    left = tone(440, 22_050, 0.05)
    right = tone(1_000, 22_050, 0.05)
    stereo = np.stack([left, right], axis=1)
    path = tmp_path / "stereo.wav"
    write_wav(path, stereo, 22_050)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 22_050)
    data, rate = read_wav(str(path))
    assert rate == 22_050
    assert data.shape == stereo.shape
    assert np.array_equal(data, stereo)


def test_read_8_bit_wav(tmp_path: Path) -> None:
    raw = bytes([0, 64, 128, 192, 255])  # unsigned, 128 is zero
    path = write_raw_wav(tmp_path / "u8.wav", raw, sampwidth=1, rate=8_000)
    data, rate = read_wav(path)
    assert rate == 8_000
    assert data[:, 0].tolist() == [-32768, -16384, 0, 16384, 32512]


def test_read_24_bit_wav(tmp_path: Path) -> None:
    values = [0, 1 << 8, -(1 << 8), 8_388_607, -8_388_608, 0x123456, -1]
    raw = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    path = write_raw_wav(tmp_path / "s24.wav", raw, sampwidth=3)
    data, rate = read_wav(path)
    assert rate == 16_000
    # The top 16 bits of each 24-bit sample (arithmetic shift).
    assert data[:, 0].tolist() == [v >> 8 for v in values]
    assert data[:, 0].tolist() == [0, 1, -1, 32767, -32768, 0x1234, -1]


def test_read_24_bit_stereo_wav(tmp_path: Path) -> None:
    frames = [(1_000 << 8, -(2_000 << 8)), (-(3_000 << 8), 4_000 << 8)]
    raw = b"".join(v.to_bytes(3, "little", signed=True) for pair in frames for v in pair)
    path = write_raw_wav(tmp_path / "s24x2.wav", raw, sampwidth=3, channels=2)
    data, _ = read_wav(path)
    assert data.tolist() == [[1_000, -2_000], [-3_000, 4_000]]


def test_read_32_bit_wav(tmp_path: Path) -> None:
    values = np.array([0, 1 << 16, -(1 << 16), 2**31 - 1, -(2**31), 0x12345678], dtype="<i4")
    path = write_raw_wav(tmp_path / "s32.wav", values.tobytes(), sampwidth=4, rate=48_000)
    data, rate = read_wav(path)
    assert rate == 48_000
    assert data.dtype == np.int16
    assert data[:, 0].tolist() == [0, 1, -1, 32767, -32768, 0x1234]


def test_read_speech_mixes_and_resamples(tmp_path: Path) -> None:
    left = tone(440, 44_100, 0.5, amplitude=0.6)
    right = tone(440, 44_100, 0.5, amplitude=0.2)
    path = tmp_path / "call.wav"
    write_wav(path, np.stack([left, right], axis=1), 44_100)
    speech = read_speech(path, 16_000)
    assert speech.dtype == np.int16
    assert speech.ndim == 1
    assert abs(len(speech) - 8_000) <= 1
    assert dominant_hz(speech, 16_000) == pytest.approx(440, abs=4)
    # The mix is the channel mean: amplitude 0.4 of full scale.
    expected = AudioFrame(tone(440, 16_000, 0.5, amplitude=0.4), 16_000).energy_db
    assert AudioFrame(speech, 16_000).energy_db == pytest.approx(expected, abs=0.2)


def test_read_speech_at_file_rate_is_unchanged(tmp_path: Path) -> None:
    samples = tone(300, 16_000, 0.1)
    path = tmp_path / "same.wav"
    write_wav(path, samples, 16_000)
    assert np.array_equal(read_speech(path, 16_000), samples)


def test_read_float_wav(tmp_path: Path) -> None:
    values = [0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -3.0, 0.25]
    path = tmp_path / "float32.wav"
    path.write_bytes(riff_wav(format_tag=3, bits=32, data=np.array(values, "<f4").tobytes()))
    data, rate = read_wav(path)
    assert rate == 16_000
    assert data.dtype == np.int16
    # Scaled by 32767 and clipped to [-1, 1], as float_to_int16 does.
    assert data[:, 0].tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32767, 8192]


def test_read_double_stereo_wav(tmp_path: Path) -> None:
    values = np.array([[0.5, -0.5], [0.0, 1.0]], dtype="<f8")
    path = tmp_path / "float64.wav"
    path.write_bytes(
        riff_wav(format_tag=3, bits=64, data=values.tobytes(), channels=2, rate=48_000)
    )
    data, rate = read_wav(path)
    assert rate == 48_000
    assert data.tolist() == [[16384, -16384], [0, 32767]]


def test_read_wave_format_extensible(tmp_path: Path) -> None:
    values = np.array([[100, -100], [32767, -32768], [0, 7]], dtype="<i2")
    pcm_guid = struct.pack("<I", 1) + bytes.fromhex("000010008000 00aa00389b71".replace(" ", ""))
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 16_000, 16_000 * 4, 4, 16, 22, 16, 0x3) + pcm_guid
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", values.nbytes)
        + values.tobytes()
    )
    path = tmp_path / "extensible.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    data, rate = read_wav(path)
    assert rate == 16_000
    assert data.tolist() == values.tolist()


# --- bad audio ---------------------------------------------------------------------------


def _bad_text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio at all\n")
    return path


def _bad_empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.wav"
    write_wav(path, np.zeros(0, dtype=np.int16), 16_000)
    return path


def _bad_width(tmp_path: Path) -> Path:
    path = tmp_path / "forty.wav"
    path.write_bytes(riff_wav(format_tag=1, bits=40, data=bytes(range(20))))
    return path


def _bad_ulaw(tmp_path: Path) -> Path:
    path = tmp_path / "phone.wav"
    path.write_bytes(riff_wav(format_tag=7, bits=8, data=bytes(range(0, 256, 8)), rate=8_000))
    return path


def _bad_missing(tmp_path: Path) -> Path:
    return tmp_path / "nowhere" / "missing.wav"


def _bad_directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


def _bad_float_nan(tmp_path: Path) -> Path:
    path = tmp_path / "float.wav"
    path.write_bytes(
        riff_wav(format_tag=3, bits=32, data=np.array([0.0, np.nan, 0.5, np.inf], "<f4").tobytes())
    )
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_bad_text, r"not a readable WAV file \(Format not recognised"),
        (_bad_empty, r"holds no audio \(0 samples\)"),
        (_bad_width, r"unsupported sample width of 40 bits"),
        (_bad_ulaw, r"unsupported sample format .*[Uu]-[Ll]aw.*; use 8, 16, 24 or 32-bit PCM"),
        (_bad_missing, r"no such file"),
        (_bad_directory, r"is a directory, not a WAV file"),
        (_bad_float_nan, r"2 sample\(s\) are NaN or infinite"),
    ],
    ids=["text-file", "empty", "40-bit", "u-law", "missing", "directory", "float-nan"],
)
def test_bad_audio_names_file_and_problem(tmp_path: Path, make, problem: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioFormatError, match=problem) as info:
        read_wav(path)
    assert str(info.value).startswith(f"{path}:")
    assert isinstance(info.value, UsageError)
    # read_speech goes through the same checks.
    with pytest.raises(AudioFormatError, match=problem):
        read_speech(path, 16_000)


def test_bad_audio_suggests_conversion(tmp_path: Path) -> None:
    for path in (_bad_text(tmp_path), _bad_ulaw(tmp_path)):
        with pytest.raises(AudioFormatError, match=rf"`sox {path.name} -b 16 out\.wav`"):
            read_wav(path)


def test_framer_cuts_chunks_of_any_size_into_whole_frames() -> None:
    from voxpipe.audio import Framer

    framer = Framer(16_000, 20)  # 320 samples a frame
    samples = np.arange(1000, dtype=np.int16)
    frames = [
        f for chunk in (samples[:7], samples[7:500], samples[500:]) for f in framer.push(chunk)
    ]
    frames += list(framer.flush())
    assert [len(f.samples) for f in frames] == [320, 320, 320, 320]
    assert [f.start_ms for f in frames] == [0.0, 20.0, 40.0, 60.0]
    joined = np.concatenate([f.samples for f in frames])
    assert np.array_equal(joined[:1000], samples) and not joined[1000:].any()
    assert list(framer.flush()) == []
