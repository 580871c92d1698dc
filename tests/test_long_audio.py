"""Long recordings: the VAD and its segmentation rules, block-wise resampling, and `speechrnn transcribe` on a
30-minute file (bounded memory, global word times, WER close to transcribing the utterances one by one)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF

from speechrnn.audio import StreamResampler, audio_blocks
from speechrnn.vad import EnergyVAD, SegmentRules, StreamSegmenter, speech_segments

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def an4_test(shared_data) -> list[tuple[Path, str]]:
    """The 130 AN4 test utterances: (wav path, reference text), sorted by path."""
    root = shared_data / "an4"
    refs = {}
    for line in (root / "etc" / "an4_test.transcription").read_text().splitlines():
        match = re.match(r"(.*)\((\S+)\)\s*$", line)
        if match:
            refs[match.group(2)] = " ".join(match.group(1).split()).upper()
    paths = sorted((root / "wav" / "an4test_clstk").glob("*/*.wav"))
    return [(path, refs[path.stem]) for path in paths]


def test_speech_segments_rules():
    shift = 0.01
    prob = np.zeros(400)
    prob[50:100] = 1  # 0.5 s of speech
    prob[120:150] = 1  # after a 0.2 s pause: the same segment
    prob[200:210] = 1  # 0.1 s burst after 0.5 s: dropped (min_speech 0.2)
    prob[300:380] = 1
    segments = speech_segments(prob, shift, min_silence=0.3, min_speech=0.2, pad=0.1)
    assert [(round(a, 2), round(b, 2)) for a, b in segments] == [(0.4, 1.6), (2.9, 3.9)]
    # the end of the track closes the last segment; its padding stops at the end
    prob[390:] = 1
    assert [round(b, 2) for _, b in speech_segments(prob, shift, min_speech=0.05)][-1] == 4.0
    # speech that never pauses is cut at the quietest frame of each segment's second half
    prob = np.ones(1000)
    energy = np.zeros(1000)
    energy[[420, 830]] = -50
    segments = speech_segments(prob, shift, max_length=5.0, energy=energy, pad=0.0)
    assert [(round(a, 2), round(b, 2)) for a, b in segments] == [(0.0, 4.2), (4.2, 8.3), (8.3, 10.0)]


def test_energy_vad_finds_speech_and_streams_as_one_pass(shared_data):
    utterances = an4_test(shared_data)[:6]
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0.0
    for path, _ in utterances:
        wav, rate = soundfile.read(path, dtype="float32")
        gap = np.zeros(rate, dtype=np.float32)
        parts += [wav, gap]
        spans.append((t, t + len(wav) / rate))
        t += (len(wav) + len(gap)) / rate
    audio = np.concatenate(parts)
    vad = EnergyVAD()
    prob = vad.speech_probability(audio, 16000)
    assert prob.shape == (len(audio) // 160 + 1,) and 0 <= prob.min() and prob.max() <= 1
    offline = speech_segments(prob, vad.frame_shift, min_silence=0.7, max_length=3.0,
                              energy=vad.energy_db(audio, 16000))
    # every segment lies in an utterance, and every utterance has speech found
    assert all(any(a - 0.15 < s < e < b + 0.15 for a, b in spans) for s, e in offline)
    assert all(any(a - 0.15 < s < b for s, _ in offline) for a, b in spans)
    # pushed in random blocks: the same segments (bounded buffer), with their audio
    segmenter = StreamSegmenter(vad, 16000, SegmentRules(min_silence=0.7, max_length=3.0))
    streamed, first = [], 0
    while first < len(audio):
        size = int(rng.integers(50, 30000))
        streamed += segmenter.push(audio[first: first + size])
        first += size
        assert len(segmenter.buffer) < 16000 * 9
    streamed += segmenter.flush()
    assert [(round(s.start, 3), round(s.end, 2)) for s in streamed] == [(round(a, 3), round(b, 2)) for a, b in offline]
    for segment in streamed:
        assert np.array_equal(segment.audio, audio[round(segment.start * 16000): round(segment.end * 16000)])


@pytest.mark.parametrize("orig,new", [(44100, 16000), (8000, 16000), (48000, 16000), (16000, 16000)])
def test_stream_resampler_matches_whole_signal(orig, new, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(50_000).astype(np.float32) * 0.1
    whole = AF.resample(torch.from_numpy(x), orig, new).numpy() if orig != new else x
    resampler, parts, first = StreamResampler(orig, new), [], 0
    while first < len(x):
        size = int(rng.integers(1, 7000))
        parts.append(resampler.push(x[first: first + size]))
        first += size
    parts.append(resampler.flush())
    assert np.abs(np.concatenate(parts) - whole).max() < 1e-5
    # a file read in blocks gives the same samples
    soundfile.write(tmp_path / "x.flac", x, orig, subtype="PCM_24")
    read = np.concatenate(list(audio_blocks(tmp_path / "x.flac", new, block_seconds=0.37)))
    ref = soundfile.read(tmp_path / "x.flac", dtype="float32")[0]
    ref = AF.resample(torch.from_numpy(ref), orig, new).numpy() if orig != new else ref
    assert np.abs(read - ref).max() < 1e-5


def test_thirty_minute_file(shared_data, tmp_path):
    """30 minutes of AN4 test utterances (looped, 0.5 s of silence between) transcribed by the CLI in a subprocess:
    peak memory, global word times, and WER against transcribing the utterances one by one."""
    from speechrnn.pretrained import default_bundle
    from speechrnn.recognizer import Recognizer

    bundle = default_bundle("audio")
    utterances = an4_test(shared_data)
    audio = {path: soundfile.read(path, dtype="float32")[0] for path, _ in utterances}
    gap = np.zeros(8000, dtype=np.float32)
    long_wav, refs, spans, t = tmp_path / "long.wav", [], [], 0.0
    with soundfile.SoundFile(long_wav, "w", 16000, 1, "PCM_16") as out:
        while t < 1800:
            for path, text in utterances:
                out.write(audio[path])
                out.write(gap)
                spans.append((t, t + len(audio[path]) / 16000))
                refs.append(text)
                t += (len(audio[path]) + len(gap)) / 16000
                if t >= 1800:
                    break
    duration = soundfile.info(long_wav).duration
    assert duration >= 1800

    # the CLI in a process of its own that reports its own peak RSS at exit: VmHWM, the high-water mark of its own
    # address space. Not getrusage: RUSAGE_CHILDREN here is the largest child this session has had (browsers
    # included), and the child's RUSAGE_SELF keeps the peak of this pytest process, whose memory it shared until its
    # exec (Linux carries the old address space's high-water mark over exec).
    measured = ("import runpy, sys\n"
                "sys.argv = ['speechrnn'] + sys.argv[1:]\n"
                "try:\n    runpy.run_module('speechrnn', run_name='__main__')\n"
                "finally:\n    print([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0],"
                " file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", measured, "transcribe", str(bundle), str(long_wav), "--format", "json",
                           "--greedy"], env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(re.search(r"VmHWM:\s*(\d+) kB", proc.stderr).group(1)) / 1024
    assert peak_mb < 1536, f"peak RSS {peak_mb:.0f} MB"
    (result,) = json.loads(proc.stdout)
    assert abs(result["duration"] - duration) < 0.01
    words = result["words"]
    assert len(words) > 0.9 * sum(len(r.split()) for r in refs)
    starts = [w["start"] for w in words]
    assert all(a <= b for a, b in zip(starts, starts[1:])), "word times go back"
    assert all(0 <= w["start"] <= w["end"] <= duration for w in words)
    # global offsets: the words sit inside the utterances, not in the silences put between them
    span_starts = np.array([s for s, _ in spans])
    inside = [spans[i][0] - 0.1 <= (w["start"] + w["end"]) / 2 <= spans[i][1] + 0.1
              for w in words for i in [int(np.searchsorted(span_starts, (w["start"] + w["end"]) / 2)) - 1]]
    assert np.mean(inside) > 0.98
    assert " ".join(w["word"] for w in words) == result["text"]

    recognizer = Recognizer.load(bundle, decoding="greedy")
    per_file = recognizer.transcribe([path for path, _ in utterances])
    per_file_wer = jiwer.wer([text for _, text in utterances], [r.text for r in per_file])
    n = len(utterances)
    stitched_wer = jiwer.wer(" ".join(refs), result["text"])
    looped_per_file_wer = jiwer.wer(" ".join(refs), " ".join(per_file[k % n].text for k in range(len(refs))))
    print(f"30-min file: peak RSS {peak_mb:.0f} MB, stitched WER {100 * stitched_wer:.2f} %, per-file "
          f"{100 * looped_per_file_wer:.2f} % ({100 * per_file_wer:.2f} % on the 130 files)")
    assert abs(stitched_wer - looped_per_file_wer) < 0.04


def ninety_seconds(shared_data, path: Path) -> Path:
    """About 90 s of AN4 test utterances (the first ~40), 0.5 s of silence between, as one wav."""
    gap, t = np.zeros(8000, dtype=np.float32), 0.0
    with soundfile.SoundFile(path, "w", 16000, 1, "PCM_16") as out:
        for wav_path, _ in an4_test(shared_data):
            wav = soundfile.read(wav_path, dtype="float32")[0]
            out.write(np.concatenate([wav, gap]))
            t += (len(wav) + len(gap)) / 16000
            if t >= 90:
                break
    return path


class Stop(Exception):
    pass


def test_long_file_progress_and_outputs_as_decoded(shared_data, tmp_path):
    """A 90 s file: progress advances group by group, each format's .part holds what was decoded so far (a run
    stopped after the first group keeps its first segments, and no final file), and the finished file is the
    whole transcript's output byte for byte."""
    from speechrnn.output import PartialOutput, render
    from speechrnn.pretrained import default_bundle
    from speechrnn.recognizer import Recognizer

    wav = ninety_seconds(shared_data, tmp_path / "long.wav")
    recognizer = Recognizer.load(default_bundle("audio"), decoding="greedy")
    seen, groups = [], []
    result = recognizer.transcribe_long(str(wav), True, progress=seen.append, on_group=groups.append)
    assert len(set(seen)) > 2 and seen == sorted(seen) and seen[-1] == pytest.approx(result.duration)
    assert [w for g in groups for w in g.words] == result.words and " ".join(t for g in groups for t in g.texts) == \
        result.text
    for fmt in ("txt", "srt", "vtt", "jsonl"):
        # stopped after the first group: the .part holds its segments, and nothing has the final name
        partial = PartialOutput(tmp_path / fmt / f"long.{fmt}", fmt, str(wav))

        def first_only(group):
            partial.add(group)
            raise Stop

        with pytest.raises(Stop):
            recognizer.transcribe_long(str(wav), True, on_group=first_only)
        part = tmp_path / fmt / f"long.{fmt}.part"
        assert not (tmp_path / fmt / f"long.{fmt}").exists()
        kept = part.read_text(encoding="utf-8")
        assert groups[0].words[0].text in kept
        if fmt == "txt":
            assert kept == " ".join(groups[0].texts)
        elif fmt == "jsonl":
            line = json.loads(kept)
            assert [w["word"] for w in line["words"]] == [w.text for w in groups[0].words]
            assert line["text"] == " ".join(groups[0].texts) and line["path"] == str(wav)
        if fmt in ("srt", "vtt"):  # the cues closed by the first group; the one still open waits
            assert render(result, fmt).startswith(kept) and 0 < kept.count(" --> ") < render(result, fmt).count(" --> ")
        partial.close()
        # a whole run: the .part, completed, is renamed; the file is what render writes for the whole transcript
        partial = PartialOutput(tmp_path / fmt / f"long.{fmt}", fmt, str(wav))
        for group in groups:
            partial.add(group)
        lines = part.read_text(encoding="utf-8")
        if fmt == "jsonl":
            assert len(lines.splitlines()) == len(groups)
        with pytest.raises(FileExistsError):  # a file that appeared meanwhile is not replaced; the .part stays
            (tmp_path / fmt / f"long.{fmt}").write_text("good")
            partial.finish(result)
        assert (tmp_path / fmt / f"long.{fmt}").read_text() == "good" and part.exists()
        (tmp_path / fmt / f"long.{fmt}").unlink()
        partial = PartialOutput(tmp_path / fmt / f"long.{fmt}", fmt, str(wav))
        for group in groups:
            partial.add(group)
        if fmt != "jsonl":  # all but the end (txt's newline, the last cue) is there before finish
            assert render(result, fmt).startswith(part.read_text(encoding="utf-8"))
        partial.finish(result)
        assert (tmp_path / fmt / f"long.{fmt}").read_text(encoding="utf-8") == render(result, fmt)
        assert not part.exists()


def test_cli_writes_long_file_as_decoded(shared_data, tmp_path):
    """`speechrnn transcribe --split-over 30 -o DIR`: srt written through its .part, which is gone at the end; the
    file is the whole transcript's srt; an existing output is refused as before."""
    from speechrnn.output import render
    from speechrnn.pretrained import default_bundle
    from speechrnn.recognizer import Recognizer

    wav = ninety_seconds(shared_data, tmp_path / "long.wav")
    command = [sys.executable, "-m", "speechrnn", "transcribe", "--greedy", "--split-over", "30", str(wav), "-o",
               str(tmp_path / "out"), "-f", "srt"]
    proc = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["long.srt"]
    recognizer = Recognizer.load(default_bundle("audio"), decoding="greedy", split_over=30)
    assert (tmp_path / "out" / "long.srt").read_text(encoding="utf-8") == render(recognizer.transcribe_long(str(wav),
                                                                                                           True), "srt")
    again = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert again.returncode != 0 and "exists already" in again.stderr
