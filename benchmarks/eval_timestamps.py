"""Word timestamps checked against something independent: an energy-based speech/non-speech boundary.

For every utterance of a manifest, the start of the first recognised word and the end of the last one (from
the CTC forced alignment, speechrnn.align) are compared with an energy boundary: `--reference trim` (default)
where the audio's energy first rises above and last falls below `--top-db` dB under the utterance's peak
(librosa.effects.trim, 25 ms frames, 10 ms hop); `--reference vad` the first and last speech segment of the
project's energy VAD with its default rules and no padding (speechrnn.vad: 12 dB over an adaptive noise floor,
segments shorter than 0.2 s dropped, so a click or a short breath before the speech is not its start).
Prints the distribution of the differences and the share of utterances within `--tolerance` seconds, and of the
misses where the reference lies outside the words (it starts earlier / ends later), how many are cut off from
them by at least --gap seconds of silence (energy --top-db under the peak): a click or a breath that the
reference counts as speech.

`--veto silero` keeps the energy boundaries but asks an independent speech detector which energy segments are
speech: a segment (a run of frames above the threshold, or a VAD segment) in which Silero VAD (a pretrained
neural VAD, `pip install silero-vad`, no padding) finds no speech is not counted, so a breath or a click before
the first word is not taken for its start. `--end-reach K` sets the frames a right-to-left aligner's word end may
lie before its separator (speechrnn/align.py; the recognizer's default unless given), for choosing it on dev.

Run:  python -m benchmarks.eval_timestamps --bundle speechrnn/pretrained/an4.pt \
          --manifest recipes/an4/exp/data/test.jsonl [--reference vad] [--veto silero] [--plot-worst 8 worst.png]

Word times come from the bundle's aligner when it has one (`speechrnn add-aligner`, recipes/an4/aligner.sh).
--plot-worst draws the utterances that disagree most: energy envelope, the energy boundary, character times.
"""

import argparse
import functools
import sys
import warnings

import librosa
import numpy as np
import torch

from speechrnn.data import load_utterances
from speechrnn.recognizer import Recognizer
from speechrnn.vad import EnergyVAD, speech_segments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--reference", choices=["trim", "vad"], default="trim",
                        help="trim: --top-db under the peak (default); vad: speechrnn.vad's energy segments")
    parser.add_argument("--top-db", type=float, default=30.0, help="trim: threshold under the peak (30 dB)")
    parser.add_argument("--tolerance", type=float, default=0.1, help="seconds (0.1)")
    parser.add_argument("--gap", type=float, default=0.1, help="silence that cuts a sound off from the words (0.1 s)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle is tuned")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--veto", choices=["none", "silero"], default="none",
                        help="silero: energy segments where Silero VAD finds no speech are not counted")
    parser.add_argument("--end-reach", type=int, metavar="K",
                        help="frames a right-to-left aligner's word end may lie before the separator after the word "
                             "(default: the recognizer's, speechrnn.recognizer.END_REACH)")
    parser.add_argument("--plot-worst", nargs=2, metavar=("N", "PNG"), help="draw the N worst utterances to PNG")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.bundle, decoding="greedy" if args.greedy else "tuned")
    if args.end_reach is not None:
        recognizer.end_reach = args.end_reach
    speech_check = silero_speech if args.veto == "silero" else None
    rate = recognizer.config.features.sample_rate
    utts = load_utterances(args.manifest)
    results = recognizer.transcribe([u.path for u in utts], timestamps=True)
    starts, ends, drawn, skipped, cut_off = [], [], [], 0, []  # cut_off: still loud in the last 30 ms
    isolated = {"first word start": 0, "last word end": 0}  # misses whose reference is a sound apart from the words
    for utt, result in zip(utts, results):
        if not result.words:
            skipped += 1
            continue
        wav = recognizer.load_input(utt.path).numpy()
        quiet = silent_frames(wav, rate, args.top_db)  # (frames,) 10 ms each
        segments = energy_segments(wav, rate, args.reference, quiet)
        if speech_check is not None:
            segments = speech_segments_only(segments, speech_check(wav, rate))
        first, last = (segments[0][0], segments[-1][1]) if segments else (0, len(wav))
        starts.append(result.words[0].start - first / rate)
        ends.append(result.words[-1].end - last / rate)
        drawn.append((abs(starts[-1]) + abs(ends[-1]), utt.id, wav, (first / rate, last / rate), result))
        cut_off.append(not quiet[-3:].any())
        if starts[-1] > args.tolerance:
            isolated["first word start"] += has_gap(quiet[int(first / rate * 100): int(result.words[0].start * 100)],
                                                    args.gap)
        if ends[-1] < -args.tolerance:
            isolated["last word end"] += has_gap(quiet[int(result.words[-1].end * 100): int(last / rate * 100)],
                                                 args.gap)
    starts, ends = np.array(starts), np.array(ends)
    both = (np.abs(starts) <= args.tolerance) & (np.abs(ends) <= args.tolerance)
    reference = f"{args.top_db:g} dB under the peak" if args.reference == "trim" else "speechrnn.vad segments"
    reference += ", those with speech by Silero VAD" if speech_check is not None else ""
    print(f"{len(starts)} utterances with words ({skipped} without); energy boundary: {reference}; decoding "
          f"{'greedy' if recognizer.decoder is None else 'tuned beam search'}; word times from "
          f"{'the aligners' if recognizer.aligner is not None else 'the recognizer'}")
    print(f"{'':18} {'median':>8} {'p10':>8} {'p90':>8} {'mean |d|':>9} {'within':>8}")
    for name, diff in (("first word start", starts), ("last word end", ends)):
        p10, p50, p90 = np.percentile(diff, [10, 50, 90])
        within = np.mean(np.abs(diff) <= args.tolerance)
        print(f"{name:18} {p50:+8.3f} {p10:+8.3f} {p90:+8.3f} {np.abs(diff).mean():9.3f} {100 * within:7.1f}%")
    for name, diff in (("starts", starts), ("ends", ends)):
        shares = " / ".join(f"{100 * np.mean(np.abs(diff) <= ms / 1000):.1f}" for ms in (40, 100, 200, 300))
        print(f"{name} within 40 / 100 / 200 / 300 ms: {shares} %")
    print(f"both within {1000 * args.tolerance:.0f} ms: {100 * both.mean():.1f} % of utterances "
          f"(differences in seconds: model minus energy boundary)")
    for name, diff, outside in (("first word start", starts, starts > args.tolerance),
                                ("last word end", ends, ends < -args.tolerance)):
        print(f"{name}: {np.sum(np.abs(diff) > args.tolerance)} off by more than {1000 * args.tolerance:.0f} ms, "
              f"{outside.sum()} with the reference outside the words, {isolated[name]} of them a sound cut off "
              f"from the words by >= {1000 * args.gap:.0f} ms under -{args.top_db:g} dB")
    cut_off = np.array(cut_off)
    print(f"{cut_off.sum()} recordings are still within {args.top_db:g} dB of their peak in their last 30 ms (cut off "
          f"mid-sound, or noisy): {np.sum(cut_off & (np.abs(ends) > args.tolerance))} of the last word ends off by "
          f"more than {1000 * args.tolerance:.0f} ms")
    if args.plot_worst:
        count, png = int(args.plot_worst[0]), args.plot_worst[1]
        plot_worst(sorted(drawn, key=lambda row: -row[0])[:count], rate,
                   args.top_db if args.reference == "trim" else None, png)
        print(f"wrote {png}")
    return 0


def silent_frames(wav: np.ndarray, rate: int, top_db: float) -> np.ndarray:
    """(frames,) bool, 10 ms frames of 25 ms: energy more than `top_db` under the utterance's peak."""
    rms = librosa.feature.rms(y=wav, frame_length=int(0.025 * rate), hop_length=int(0.01 * rate))[0]
    return librosa.amplitude_to_db(rms, ref=np.max) < -top_db


def has_gap(quiet: np.ndarray, gap: float) -> bool:
    """Whether `quiet` (10 ms frames) holds a run of at least `gap` seconds."""
    run = longest = 0
    for frame in quiet:
        run = run + 1 if frame else 0
        longest = max(longest, run)
    return longest >= round(gap * 100)


def energy_segments(wav: np.ndarray, rate: int, reference: str, quiet: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) samples of the sounds in `wav` by the chosen energy reference. trim: the runs of 10 ms frames
    that are not `quiet` (silent_frames: more than --top-db under the peak), so the first starts and the last ends
    where librosa.effects.trim cuts; vad: speechrnn.vad's segments."""
    if reference == "trim":
        hop = int(0.01 * rate)
        loud = ~quiet  # (frames,)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))  # run starts, ends
        return [(int(a) * hop, min(int(b) * hop, len(wav))) for a, b in zip(edges[::2], edges[1::2])]
    vad = EnergyVAD()
    segments = speech_segments(vad.speech_probability(wav, rate), vad.frame_shift, pad=0.0)
    return [(int(a * rate), int(b * rate)) for a, b in segments]


def speech_segments_only(segments: list[tuple[int, int]], speech: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The `segments` that overlap any of the `speech` spans (both (start, end) samples)."""
    return [(a, b) for a, b in segments if any(a < end and b > start for start, end in speech)]


@functools.cache
def silero_model():
    try:
        import silero_vad
    except ImportError:
        sys.exit("--veto silero needs Silero VAD: pip install silero-vad (or pip install -e .[eval])")
    with warnings.catch_warnings():  # its loader's deprecation notices (importlib.resources.path, torch.jit.load)
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        return silero_vad.load_silero_vad(), silero_vad.get_speech_timestamps


def silero_speech(wav: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """(start, end) samples of the speech Silero VAD finds in `wav` (its default thresholds, no padding)."""
    model, speech_timestamps = silero_model()
    at = rate if rate in (8000, 16000) else 16000  # the rates Silero takes
    audio = wav if at == rate else librosa.resample(wav, orig_sr=rate, target_sr=at)
    found = speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), model,
                              sampling_rate=at, speech_pad_ms=0)
    return [(round(span["start"] * rate / at), round(span["end"] * rate / at)) for span in found]


def plot_worst(rows: list, rate: int, top_db: float, png: str) -> None:
    """One panel per utterance: energy (dB under the peak, 25 ms frames), the energy boundary (green), the word
    edges (red) and the words."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 2.2 * len(rows)), squeeze=False)
    for ax, (error, name, wav, (first, last), result) in zip(axes[:, 0], rows):
        rms = librosa.feature.rms(y=wav, frame_length=int(0.025 * rate), hop_length=int(0.01 * rate))[0]
        ax.plot(np.arange(len(rms)) * 0.01, librosa.amplitude_to_db(rms, ref=np.max), lw=1)
        if top_db is not None:
            ax.axhline(-top_db, color="gray", ls=":")
        for edge in (first, last):
            ax.axvline(edge, color="green")
        for word in result.words:
            ax.axvspan(word.start, word.end, color="red", alpha=0.15)
            ax.text(word.start, -8, word.text, color="red", fontsize=8)
        ax.set_ylim(-70, 3)
        ax.set_title(f"{name}: off by {error:.2f} s in all", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
