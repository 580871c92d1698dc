"""Checks of the data before it is used: manifest fields of the right type (check_entry, called by data.iter_manifest
for every line) and, before training, every audio file's header read once (usable_audio): unreadable files left out
with a count, a run with too few usable ones stopped, durations that differ from the manifest's reported and
corrected. Reading the headers of AN4's 948 training and dev files takes about 0.1 s."""

import json
import os
import stat
import sys

import soundfile

from .errors import AudioError, ManifestError, UserError

MAX_DURATION = 1e6  # seconds (11 days): a larger manifest duration is a mistake, and overflows sample counts
PATH_FIELDS = ("audio_filepath", "ink_filepath")


def field_problem(key: str, value) -> str | None:
    """What is wrong with a manifest field's value, or None."""
    if key in PATH_FIELDS:
        return None if isinstance(value, str) and value.strip() else "must be a non-empty file path (a string)"
    if key == "duration":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number and 0 <= value <= MAX_DURATION else \
            f"must be the length in seconds, a number from 0 to {MAX_DURATION:g}"
    if key == "text":
        return None if isinstance(value, str) else "must be a string"
    if value is None or isinstance(value, (bool, float, list, dict)):  # id, a label field: a string or an integer
        return "must be a string or an integer"
    return None


def check_entry(entry: dict, fields: tuple[str, ...], where: str) -> None:
    """ManifestError naming `where` (file:line) and the field when a field of `entry` (a required one, or one read
    when present) has the wrong type or value: `duration` null, "abc", NaN or negative, `text: null`, a path 5."""
    for key in (*fields, *(k for k in (*PATH_FIELDS, "duration", "text", "id", "speaker") if k not in fields)):
        if key in entry and (problem := field_problem(key, entry[key])) is not None:
            raise ManifestError(f"{where}: field {key}={json.dumps(entry[key])[:60]} {problem}; fix or delete the "
                                "line")


def header_duration(path: str) -> float:
    """The duration (s) of an audio file from its header, without decoding; AudioError when it is not a regular,
    non-empty audio file with samples (a FIFO or a folder is refused without being opened)."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise AudioError(f"{path}: cannot be read ({err.strerror}); check the manifest's audio_filepath") from None
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(f"{path}: not a regular file; point the manifest's audio_filepath to an audio file")
    if info.st_size == 0:
        raise AudioError(f"{path}: file is empty; re-copy or drop it from the manifest")
    try:
        header = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as err:
        reason = " ".join(str(err).split()).split("': ", 1)[-1].rstrip(".")  # without "Error opening 'PATH'"
        raise AudioError(f"{path}: not readable as audio ({reason}); re-encode it or drop it from the manifest") from None
    if header.frames <= 0 or header.samplerate <= 0:
        raise AudioError(f"{path}: holds no samples (truncated?); re-copy or drop it from the manifest")
    return header.frames / header.samplerate


SHOWN = 3  # problems of each kind printed one by one before the count


def usable_audio(dataset: "AudioDataset", data_config, where: str) -> "AudioDataset":
    """The training set or dev set `dataset` (of manifest `where`) after reading each file's header once: unreadable
    files are reported (the first SHOWN, then the count) and left out, files whose duration differs from the
    manifest's by more than data.duration_tolerance are reported and take their real duration. UserError, before
    any training, when fewer than data.min_usable of the utterances (or none) are left. Unchanged (the same object)
    when every file is readable and as long as the manifest says."""
    paths, durations, total = dataset.utterances.paths, dataset.utterances.durations, len(dataset)
    if not total:  # the task says what an empty set means
        return dataset
    keep, real, bad, off = [], {}, [], []
    for index, path in enumerate(paths):
        try:
            seconds = header_duration(path)
        except AudioError as err:
            bad.append(str(err))
            continue
        keep.append(index)
        if abs(seconds - durations[index]) > data_config.duration_tolerance:
            real[index] = seconds
            off.append(f"{path}: {seconds:.2f} s, the manifest says {durations[index]:.2f} s")
    for problem in bad[:SHOWN]:
        print(f"warning: {problem} (left out)", file=sys.stderr)
    if bad:
        print(f"warning: {where}: {len(bad)} of {total} audio file(s) unreadable and left out", file=sys.stderr)
    for problem in off[:SHOWN]:
        print(f"warning: {problem}; its real duration is used", file=sys.stderr)
    if len(off) > SHOWN:
        print(f"warning: {where}: {len(off)} file(s) differ from their manifest duration by more than "
              f"data.duration_tolerance={data_config.duration_tolerance:g} s; their real durations are used",
              file=sys.stderr)
    if not keep or len(keep) < data_config.min_usable * total:
        floor = "none to train on" if not keep else f"under data.min_usable={data_config.min_usable:g}"
        raise UserError(f"{where}: {len(keep)} of {total} utterance(s) have readable audio ({len(bad)} unreadable), "
                        f"{floor}; fix the files (see the warnings above) or lower data.min_usable")
    if not bad and not real:
        return dataset
    kept = dataset.subset(keep)
    for position, index in enumerate(keep):
        if index in real:
            kept.utterances.durations[position] = real[index]
            kept.input_lengths[position] = int(real[index] * dataset.sample_rate)
            kept.frame_lengths[position] = kept.input_lengths[position] / dataset.hop_length
    return kept
