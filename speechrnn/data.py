"""JSONL manifests (NeMo field names), the audio and ink Datasets, padding collate, and a length-bucketing batch
sampler. Both datasets give items {"id", "inputs", "tokens", "text"}: `inputs` is a waveform (N,) for audio and
pen-stroke features (T, F) for ink; `input_lengths` and `frame_lengths` (for batching) say how long each is.

Manifests are read as a stream (iter_manifest). The audio dataset keeps them by column (Utterances: packed strings,
durations; token ids flat in RaggedInts), a few hundred bytes per utterance, so 100k+ line manifests fit in memory
in every DDP rank."""

import hashlib
import json
import os
import random
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torchaudio.functional as AF
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from .audio import load_audio
from .augment import AugmentConfig, augment, speech_bounds
from .datacheck import check_entry
from .errors import AudioError, ManifestError
from .features import pad_inputs
from .ink import InkError, InkFeatureConfig, check_ink, featurize, load_ink

AUDIO_FIELDS = ("audio_filepath", "duration", "text")
INK_FIELDS = ("text",)  # plus "ink" (inline) or "ink_filepath" [+ "ink_index" into an ink store]


@dataclass
class Utterance:
    id: str
    path: str  # absolute or relative to the working directory, resolved from the manifest's folder
    duration: float
    text: str
    speaker: str = ""


def write_manifest(path: str | Path, entries: list[dict]) -> None:
    """Write entries as JSON Lines; `audio_filepath` is made relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for entry in entries:
            entry = dict(entry)
            for key in ("audio_filepath", "ink_filepath"):
                if key in entry:
                    entry[key] = os.path.relpath(os.path.abspath(entry[key]), os.path.abspath(path.parent))
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def iter_manifest(path: str | Path, fields: tuple[str, ...] = AUDIO_FIELDS, allow_empty: bool = False) -> Iterator[dict]:
    """The entries of a JSONL manifest one at a time, read as they are consumed (constant memory): `audio_filepath`
    and `ink_filepath` resolved against the manifest's folder, `id` defaulting to the file's stem. A line that is
    not JSON, lacks a field or holds one of the wrong type (check_entry) raises ManifestError naming file:line and
    the field when it is reached, a manifest without entries (unless `allow_empty`) when its end is; a missing file
    raises at once."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (run the recipe's data stage first)")
    return _entries(path, fields, allow_empty)


def _entries(path: Path, fields: tuple[str, ...], allow_empty: bool) -> Iterator[dict]:
    folder = os.path.realpath(path.parent)
    seen = False
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise ManifestError(f"{path}:{number}: not UTF-8 (byte {err.start + 1} of the line); re-save the "
                                    "manifest as UTF-8") from None
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{number}: not a JSON object ({err.msg}); fix or delete the line") from None
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise ManifestError(f"{path}:{number}: missing field(s) {', '.join(missing)}; each line needs {', '.join(fields)}")
            check_entry(entry, fields, f"{path}:{number}")
            seen = True
            for key in ("audio_filepath", "ink_filepath"):
                if key in entry and not os.path.isabs(entry[key]):
                    entry[key] = os.path.normpath(os.path.join(folder, entry[key]))
            if "id" not in entry:
                entry["id"] = Path(entry.get("audio_filepath", entry.get("ink_filepath", str(number)))).stem
            yield entry
    if not seen and not allow_empty:
        raise ManifestError(f"{path}: no utterances: the manifest is empty (or blank lines only); fill it (the "
                            "recipe's data stage) or point to another one")


def read_manifest(path: str | Path, fields: tuple[str, ...] = AUDIO_FIELDS, allow_empty: bool = True) -> list[dict]:
    """All entries of a JSONL manifest as a list of dicts (see iter_manifest; prefer it, or load_utterances, for
    large manifests). A line that is not JSON or lacks a field raises ManifestError naming file:line; an empty
    manifest gives [] (unless not `allow_empty`)."""
    return list(iter_manifest(path, fields, allow_empty))


class StringColumn:
    """A sequence of strings packed into one UTF-8 buffer with int64 offsets: 8 bytes per string besides its text,
    against about 60 for a list of str. Grows by append(); items are decoded when read."""

    def __init__(self, strings: Iterable[str] = ()):
        self.blob, self.ends = bytearray(), array("q", [0])
        for string in strings:
            self.append(string)

    def append(self, string: str) -> None:
        self.blob += string.encode("utf-8")
        self.ends.append(len(self.blob))

    def __len__(self) -> int:
        return len(self.ends) - 1

    def __getitem__(self, index: int) -> str:
        index = range(len(self))[index]
        return self.blob[self.ends[index] : self.ends[index + 1]].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        blob, ends = self.blob, self.ends
        for index in range(len(ends) - 1):
            yield blob[ends[index] : ends[index + 1]].decode("utf-8")

    def take(self, indices: Iterable[int]) -> "StringColumn":
        return StringColumn(self[i] for i in indices)

    def digest(self) -> bytes:
        return hashlib.sha256(self.ends.tobytes() + self.blob).digest()


class RaggedInts:
    """A sequence of lists of non-negative ints (token ids) stored flat with int64 offsets; items read as lists.
    The flat array is as narrow as the values allow: one byte per id for a character vocabulary, widened (to 2,
    4, 8 bytes) when a larger id comes."""

    WIDER = {"B": "H", "H": "I", "I": "Q"}

    def __init__(self, lists: Iterable[list[int]] = ()):
        self.flat, self.ends = array("B"), array("q", [0])
        for values in lists:
            self.append(values)

    def append(self, values: list[int]) -> None:
        while True:
            try:
                self.flat.extend(values)
                break
            except OverflowError:  # undo the part appended, then widen (a negative id fails at "Q" with its error)
                del self.flat[self.ends[-1] :]
                if self.flat.typecode not in self.WIDER:
                    raise
                self.flat = array(self.WIDER[self.flat.typecode], self.flat)
        self.ends.append(len(self.flat))

    def __len__(self) -> int:
        return len(self.ends) - 1

    def __getitem__(self, index: int) -> list[int]:
        index = range(len(self))[index]
        return self.flat[self.ends[index] : self.ends[index + 1]].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        flat, ends = self.flat, self.ends
        for index in range(len(ends) - 1):
            yield flat[ends[index] : ends[index + 1]].tolist()

    def take(self, indices: Iterable[int]) -> "RaggedInts":
        return RaggedInts(self[i] for i in indices)

    def digest(self) -> bytes:
        return hashlib.sha256(self.ends.tobytes() + self.flat.tobytes()).digest()


class Utterances(Sequence):
    """A list of Utterance stored by column (packed strings, float64 durations): about a third of the memory of a
    list of dataclasses or dicts. Indexing builds the Utterance; slicing and take() give Utterances."""

    def __init__(self, utterances: Iterable[Utterance] = ()):
        self.ids, self.paths, self.texts, self.speakers = StringColumn(), StringColumn(), StringColumn(), StringColumn()
        self.durations = array("d")
        for utt in utterances:
            self.append(utt)

    def append(self, utt: Utterance) -> None:
        self.ids.append(utt.id)
        self.paths.append(utt.path)
        self.texts.append(utt.text)
        self.speakers.append(utt.speaker)
        self.durations.append(utt.duration)

    def __len__(self) -> int:
        return len(self.durations)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(len(self))[index])
        return Utterance(self.ids[index], self.paths[index], self.durations[index], self.texts[index],
                         self.speakers[index])

    def __iter__(self) -> Iterator[Utterance]:
        return map(Utterance, self.ids, self.paths, self.durations, self.texts, self.speakers)

    def take(self, indices: Iterable[int]) -> "Utterances":
        return Utterances(self[i] for i in indices)


def load_utterances(path: str | Path) -> Utterances:
    """The utterances of an audio manifest, streamed into a columnar store (no list of dicts is built)."""
    return Utterances(
        Utterance(id=str(e["id"]), path=e["audio_filepath"], duration=float(e["duration"]), text=str(e["text"]),
                  speaker=str(e.get("speaker", "")))
        for e in iter_manifest(path)
    )


class AudioDataset(Dataset):
    """Items are dicts with the waveform (N,) and token ids; an unreadable file yields None (reported once).

    With `speed_factors` (e.g. [0.9, 1.0, 1.1]) each item is played faster or slower by a factor drawn from
    (seed, epoch, index), and with `augmentation` (augment.AugmentConfig) it then passes the augmentation chain,
    drawn from the same triple: a resumed run draws what an uninterrupted one would. With `trim_edges` each item is
    cut to its speech last (augment.speech_bounds)."""

    def __init__(self, utterances: Iterable[Utterance], tokenizer, sample_rate: int, speed_factors: list[float] = (),
                 seed: int = 0, hop_length: int = 160, augmentation: AugmentConfig | None = None,
                 trim_edges: bool = False):
        # columnar (see Utterances, RaggedInts): a few hundred bytes per utterance, for manifests of 100k+ lines
        self.utterances = utterances if isinstance(utterances, Utterances) else Utterances(utterances)
        self.tokens = RaggedInts(map(tokenizer.encode, self.utterances.texts) if tokenizer is not None else ())
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.speed_factors = list(speed_factors)
        self.augmentation = augmentation if augmentation is not None and augmentation.enabled() else None
        self.trim_edges = trim_edges
        self.seed = seed
        self.epoch = 0
        self.input_lengths = array("q", (int(d * sample_rate) for d in self.utterances.durations))  # samples
        self.frame_lengths = array("d", (n / hop_length for n in self.input_lengths))

    @property
    def texts(self) -> StringColumn:
        return self.utterances.texts

    def __len__(self) -> int:
        return len(self.utterances)

    def subset(self, keep: Iterable[int]) -> "AudioDataset":
        keep = list(keep)
        kept = AudioDataset((), None, self.sample_rate, self.speed_factors, self.seed, self.hop_length,
                            self.augmentation, self.trim_edges)
        kept.utterances, kept.tokens = self.utterances.take(keep), self.tokens.take(keep)
        kept.input_lengths = array("q", (self.input_lengths[i] for i in keep))
        kept.frame_lengths = array("d", (self.frame_lengths[i] for i in keep))
        return kept

    def fingerprint(self) -> str:
        """A digest of the texts, token ids and lengths (equal on every DDP rank that reads the same data)."""
        return hashlib.sha256(self.texts.digest() + self.tokens.digest() + self.input_lengths.tobytes()).hexdigest()

    def without_augmentation(self) -> "AudioDataset":
        plain = self.subset(range(len(self)))
        plain.speed_factors, plain.augmentation = [], None
        return plain

    def __getitem__(self, index: int) -> dict | None:
        utt = self.utterances[index]
        try:
            wav = load_audio(utt.path, self.sample_rate)
        except AudioError as err:
            print(f"error: {err} (utterance {utt.id} skipped)", file=sys.stderr)
            return None
        if self.speed_factors:
            factor = random.Random(f"{self.seed}-{self.epoch}-{index}").choice(self.speed_factors)
            if factor != 1.0:  # read as if recorded at rate * factor: `factor` times faster, pitch shifted too
                wav = AF.resample(wav, round(self.sample_rate * factor), self.sample_rate)
        if self.augmentation is not None and self.epoch >= self.augmentation.start_epoch:
            draw = np.random.default_rng([self.seed, self.epoch, index])
            wav = augment(wav, self.sample_rate, self.augmentation, draw)
        if self.trim_edges:
            wav = wav[slice(*speech_bounds(wav, self.sample_rate))]
        return {"id": utt.id, "inputs": wav, "tokens": torch.tensor(self.tokens[index], dtype=torch.long),
                "text": utt.text}


class InkDataset(Dataset):
    """Items hold pen-stroke features (T, F) of `ink.featurize`. Inks that cannot be read or featurised are
    reported one line each, counted and left out at construction. Features without augmentation are computed
    once and kept; with `augment`, each item is featurised from an augmented copy drawn from (seed, epoch, index),
    so a resumed run draws what an uninterrupted one would."""

    def __init__(self, entries: Iterable[dict], tokenizer, config: InkFeatureConfig, augment: bool = False,
                 seed: int = 0, where: str = "ink"):
        self.config, self.augment, self.seed, self.epoch = config, augment, seed, 0
        self.ids, self.texts, self.inks, self.features = [], [], [], []
        skipped = seen = 0
        for seen, entry in enumerate(tqdm(entries, desc=f"features {where}", unit="ink", disable=None, leave=False), 1):
            try:
                ink = check_ink(load_ink(entry), f"{where}: entry {entry.get('id', '?')}")
                features = featurize(ink, config)
            except InkError as err:
                print(f"error: {err} (entry {entry.get('id', '?')} skipped)", file=sys.stderr)
                skipped += 1
                continue
            self.ids.append(str(entry["id"]))
            self.texts.append(str(entry["text"]))
            self.inks.append(ink if augment else None)
            self.features.append(torch.from_numpy(features).float())
        if skipped:
            print(f"warning: {where}: {skipped} of {seen} ink sample(s) skipped (see the errors above)",
                  file=sys.stderr)
        self.tokens = [tokenizer.encode(text) for text in self.texts] if tokenizer else []
        self.input_lengths = [len(f) for f in self.features]  # resampled points (before augmentation)
        self.frame_lengths = list(self.input_lengths)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: list[int]) -> "InkDataset":
        kept = InkDataset([], None, self.config, self.augment, self.seed)
        for name in ("ids", "texts", "inks", "features", "tokens", "input_lengths", "frame_lengths"):
            setattr(kept, name, [getattr(self, name)[i] for i in keep])
        return kept

    def fingerprint(self) -> str:
        """A digest of the texts, token ids and lengths (equal on every DDP rank that reads the same data)."""
        return hashlib.sha256(json.dumps([self.texts, self.tokens, self.input_lengths]).encode()).hexdigest()

    def without_augmentation(self) -> "InkDataset":
        plain = self.subset(range(len(self)))
        plain.augment = False
        return plain

    def __getitem__(self, index: int) -> dict:
        features = self.features[index]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            features = torch.from_numpy(featurize(self.inks[index], self.config, rng)).float()
        return {"id": self.ids[index], "inputs": features, "tokens": torch.tensor(self.tokens[index], dtype=torch.long),
                "text": self.texts[index]}


def manifest_texts(path: str | Path) -> list[str]:
    """The "text" of every line, streamed (no list of dicts is built)."""
    return [str(e["text"]) for e in iter_manifest(path, fields=("text",))]


def load_dataset(config, manifest: str | Path, tokenizer, training: bool = False) -> "AudioDataset | InkDataset":
    """The dataset of a manifest for `config.modality`, with training-time augmentation when `training`."""
    if config.modality == "ink":
        return InkDataset(iter_manifest(manifest, INK_FIELDS), tokenizer, config.ink,
                          augment=training and config.ink.augment, seed=config.train.seed, where=str(manifest))
    features = config.features
    return AudioDataset(load_utterances(manifest), tokenizer, features.sample_rate,
                        config.data.speed_perturb if training else (), config.train.seed, features.hop_length,
                        config.data.augment if training else None, config.data.trim_edges)


def collate(items: list[dict | None]) -> dict:
    """Pad inputs ((N,) waveforms or (T, F) features) and token ids; drop items that failed to load."""
    items = [item for item in items if item is not None]
    inputs, input_lens = pad_inputs([item["inputs"] for item in items])  # (B, N) or (B, T, F), (B,)
    token_lens = torch.tensor([len(item["tokens"]) for item in items], dtype=torch.long)
    tokens = torch.zeros(len(items), int(token_lens.max()) if items else 0, dtype=torch.long)  # (B, L)
    for row, item in enumerate(items):
        tokens[row, : len(item["tokens"])] = item["tokens"]
    return {"ids": [item["id"] for item in items], "texts": [item["text"] for item in items],
            "inputs": inputs, "input_lens": input_lens, "tokens": tokens, "token_lens": token_lens}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length whose padded size (batch x longest) stays under `max_frames`.

    Each epoch the lengths get a little multiplicative noise before sorting (so batches differ between
    epochs) and the batch order is shuffled; both are seeded by (seed, epoch), so a resumed run sees
    exactly the batches an uninterrupted one would.

    With `num_replicas` > 1 (distributed training) every rank builds the same list of batches and takes every
    `num_replicas`-th from position `rank` on, after dropping the last `len % num_replicas` batches (fewer than
    `num_replicas`, drawn afresh each epoch by the shuffle), so all ranks take the same number of steps.
    """

    def __init__(self, lengths: list[float], max_frames: float, shuffle: bool = True, seed: int = 0,
                 max_batch_size: int = 512, num_replicas: int = 1, rank: int = 0):
        self.lengths = lengths
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        noisy = [(length * (1 + 0.1 * rng.random()) if self.shuffle else length, i) for i, length in enumerate(self.lengths)]
        batches, batch, longest = [], [], 0.0
        for _, index in sorted(noisy):
            longest_if_added = max(longest, self.lengths[index])
            if batch and (longest_if_added * (len(batch) + 1) > self.max_frames or len(batch) >= self.max_batch_size):
                batches.append(batch)
                batch, longest_if_added = [], self.lengths[index]
            batch.append(index)
            longest = longest_if_added
        if batch:
            batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        if self.num_replicas > 1:
            batches = batches[: len(batches) - len(batches) % self.num_replicas][self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def state_dict(self) -> dict:  # holds for any number of replicas: resuming on more or fewer ranks is fine
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.seed = state["epoch"], state["seed"]


def make_loader(dataset, config, shuffle: bool, seed: int, num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """Length-bucketed batches of `dataset` (config.data.max_frames, max_batch_size, num_workers); with
    `num_replicas` > 1, rank `rank`'s share of them (see BucketBatchSampler)."""
    sampler = BucketBatchSampler(dataset.frame_lengths, config.data.max_frames, shuffle=shuffle, seed=seed,
                                 max_batch_size=config.data.max_batch_size, num_replicas=num_replicas, rank=rank)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=config.data.num_workers)
