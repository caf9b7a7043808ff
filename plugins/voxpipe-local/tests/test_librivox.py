"""The pocketsphinx ASR on real human speech: five LibriVox sentences (tests/data/librivox),
each streamed as one utterance of a session of its own, scored by word error rate over all
five; and sessions sharing the general language model decode at once, each its own audio.

Every figure below was measured over repeated runs and is deterministic: the same
transcripts every run, whether the audio reaches the decoder 20 ms or 100 ms at a time. Each
threshold allows two or three word errors more than measured (another CPU's floating point
may tip a close call)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import pocketsphinx  # type: ignore[import-untyped]
import pytest

from voxpipe.audio import AudioFrame, Int16Array, read_wav
from voxpipe.protocols import Transcript
from voxpipe.vad import Utterance
from voxpipe_local import sphinx
from voxpipe_local.sphinx import PocketsphinxASR
from voxpipe_local.sphinx_model import SAMPLE_RATE, Decoder, PocketsphinxOptions, SphinxModel

DATA = Path(__file__).parent / "data" / "librivox"
FRAME = SAMPLE_RATE // 50  # 20 ms
#: The general language model: 27 word errors in the 70 words (0.386, 4 runs).
MAX_WER_GENERAL = 0.43
#: A vocabulary of the five sentences: 1 error ("himself and": 0.014, 3 runs).
MAX_WER_VOCABULARY = 0.05
#: The same with ``free_words``: 3 errors (0.043, 3 runs).
MAX_WER_FREE_WORDS = 0.08
#: The five sentences among DISTRACTORS: 1 error, the same as without them (0.014, 3 runs).
MAX_WER_MIXED = 0.05
DISTRACTORS = (Path(__file__).parent / "data" / "distractors.txt").read_text().splitlines()
_NORMALISED = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    audio: Int16Array
    reference: str


def load_clips() -> list[Clip]:
    clips = []
    for path in sorted(DATA.glob("*.wav")):
        audio, sample_rate = read_wav(path)
        assert sample_rate == SAMPLE_RATE
        reference = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        clips.append(Clip(path.stem.rsplit("-", 1)[1], audio, reference))
    return clips


CLIPS = load_clips()
REFERENCES = [clip.reference for clip in CLIPS]


def word_error_rate(hypotheses: Sequence[str]) -> float:
    """Over all five clips: word edits per reference word (lower case, no punctuation)."""
    return float(
        jiwer.wer(
            REFERENCES,
            list(hypotheses),
            reference_transform=_NORMALISED,
            hypothesis_transform=_NORMALISED,
        )
    )


async def transcribe(asr: PocketsphinxASR, clip: Clip, interleave: bool = False) -> str:
    """``clip`` as one utterance of a stream of its own, in 20 ms frames, marked as the
    session's VAD would (speech confirmed 60 ms in, dated back to the first frame; ended
    after the last): its final transcript. ``interleave``: yield to the loop after each
    frame, so that other streams' audio goes in between."""
    stream = asr.listen()
    try:
        at_ms = 0.0
        for offset in range(0, len(clip.audio), FRAME):
            frame = AudioFrame(clip.audio[offset : offset + FRAME], SAMPLE_RATE, at_ms)
            stream.push(frame)
            at_ms = frame.end_ms
            if offset == 2 * FRAME:
                stream.speech_started(0.0)
            if interleave:
                await asyncio.sleep(0)
        stream.speech_ended(Utterance(0.0, at_ms, at_ms))
        stream.end_input()
        finals = [e.text async for e in stream if isinstance(e, Transcript) and e.is_final]
    finally:
        await stream.aclose()
    (final,) = finals
    return final


async def transcribe_all(options: PocketsphinxOptions) -> list[str]:
    asr = PocketsphinxASR(options)
    return [await transcribe(asr, clip) for clip in CLIPS]


@pytest.fixture(scope="module")
def general_transcripts() -> list[str]:
    """The five clips through the general language model, one after the other (~8 s)."""
    return asyncio.run(transcribe_all(PocketsphinxOptions()))


def test_the_clips_are_short_16_khz_mono_with_their_references() -> None:
    assert [clip.name for clip in CLIPS] == ["0870", "0880", "0890", "0920", "0930"]
    assert all(2 < len(clip.audio) / SAMPLE_RATE < 8 for clip in CLIPS)
    assert sum(len(reference.split()) for reference in REFERENCES) == 70


def test_the_general_model_hears_human_speech_roughly(general_transcripts: list[str]) -> None:
    error = word_error_rate(general_transcripts)
    assert error <= MAX_WER_GENERAL, (error, general_transcripts)


def test_a_vocabulary_of_the_sentences_hears_them_nearly_exactly() -> None:
    transcripts = asyncio.run(transcribe_all(PocketsphinxOptions(vocabulary=REFERENCES)))
    assert word_error_rate(transcripts) <= MAX_WER_VOCABULARY, transcripts


def test_free_words_hear_the_sentences_nearly_exactly() -> None:
    """~7 s: free words make the grammar's search slow (a real-time factor of ~0.25)."""
    options = PocketsphinxOptions(vocabulary=REFERENCES, free_words=True)
    transcripts = asyncio.run(transcribe_all(options))
    assert word_error_rate(transcripts) <= MAX_WER_FREE_WORDS, transcripts


def test_the_sentences_are_heard_among_distractor_phrases() -> None:
    options = PocketsphinxOptions(vocabulary=[*DISTRACTORS, *REFERENCES])
    transcripts = asyncio.run(transcribe_all(options))
    assert word_error_rate(transcripts) <= MAX_WER_MIXED, transcripts


@pytest.mark.asyncio
async def test_sessions_sharing_the_general_model_decode_at_once_each_its_own_clip(
    general_transcripts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two streams (one language model between their decoders) on the two shortest clips,
    their audio interleaved: each gets the transcript its clip gets alone."""
    decoded: list[int] = []  # the decoder of each piece of audio, in the order decoded
    decode = sphinx.partial_text

    def recorded(decoder: Decoder, audio: bytes) -> str:
        decoded.append(id(decoder))
        return decode(decoder, audio)

    monkeypatch.setattr(sphinx, "partial_text", recorded)
    asr = PocketsphinxASR(PocketsphinxOptions())
    pair = [1, 4]  # 0880 (3.0 s) and 0930 (3.3 s)
    got = await asyncio.gather(*(transcribe(asr, CLIPS[i], interleave=True) for i in pair))
    assert got == [general_transcripts[i] for i in pair]
    first, second = dict.fromkeys(decoded)  # the two decoders, in order of first use
    last_of_first = max(at for at, decoder in enumerate(decoded) if decoder == first)
    assert decoded.index(second) < last_of_first  # the second began before the first ended


@pytest.mark.asyncio
async def test_a_decoder_sharing_the_model_hears_what_one_with_its_own_hears(
    general_transcripts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def own_language_model(self: SphinxModel) -> Decoder:
        return pocketsphinx.Decoder(loglevel="ERROR")  # type: ignore[no-any-return]

    monkeypatch.setattr(SphinxModel, "decoder", own_language_model)
    got = await transcribe(PocketsphinxASR(PocketsphinxOptions()), CLIPS[1])
    assert got == general_transcripts[1]
