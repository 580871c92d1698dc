"""Lines of handwriting: composed from one writer's words (speechrnn/ink/compose.py, data_prep/ink_lines.py) and
measured window by window so that a drifting baseline is not taken for height (features.writing_frame)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from speechrnn.data import read_manifest, write_manifest
from speechrnn.ink import Ink, ink_features, ink_to_dict, normalize, writing_box
from speechrnn.ink.compose import compose_line, line_lengths, widest_inner_gap
from speechrnn.ink.features import writing_frame

REPO = Path(__file__).resolve().parents[1]


def test_a_composed_line_keeps_its_words_in_order_with_visible_gaps(unipen_words):
    words = [w.ink for w in unipen_words[:6]]
    line = compose_line(words, np.random.default_rng(3))
    again = compose_line(words, np.random.default_rng(3))
    assert line.text == " ".join(w.label for w in unipen_words[:6])
    assert len(line.strokes) == sum(len(w.strokes) for w in words)
    assert all(np.array_equal(a, b) for a, b in zip(line.strokes, again.strokes))  # a seed gives one line
    at = 0
    previous_right, previous_end = -math.inf, -math.inf
    for word in words:
        placed = line.strokes[at: at + len(word.strokes)]
        at += len(word.strokes)
        left = min(s[:, 0].min() for s in placed)
        assert left - previous_right >= 1.3 * widest_inner_gap(placed) - 1e-9  # wider than any gap inside it
        assert min(s[0, 2] for s in placed) > previous_end  # written after the word before
        previous_right, previous_end = max(s[:, 0].max() for s in placed), max(s[-1, 2] for s in placed)


def test_line_lengths_cut_a_writers_words_into_lines_of_2_to_10():
    rng = np.random.default_rng(0)
    for count in (2, 3, 11, 57, 300):
        lengths = line_lengths(count, rng)
        assert sum(lengths) == count and all(2 <= n <= 10 for n in lengths), (count, lengths)


def test_a_line_is_measured_like_its_words_however_its_baseline_drifts(unipen_words):
    words = [w.ink for w in unipen_words[10:20]]
    word_height = float(np.median([writing_box(w)[2] for w in words]))
    line = compose_line(words, np.random.default_rng(1))
    angle = math.radians(4.0)  # tilted further: the right end sits several word heights above the left
    line = Ink([np.column_stack([s[:, 0], s[:, 1] + math.tan(angle) * s[:, 0], s[:, 2]]) for s in line.strokes])
    _, knots_x, _, height = writing_frame(line)
    assert len(knots_x) >= 3 and 0.8 < height / word_height < 1.25, (len(knots_x), height / word_height)
    flat = normalize(line)
    centres = [float(np.median(s[:, 1])) for s in flat.strokes]
    assert abs(np.median(centres[:10])) < 1.0 and abs(np.median(centres[-10:])) < 1.0  # both ends on the line
    word = words[0]  # narrower than two windows: one knot, the word's median, as always
    _, knots_x, knots_y, _ = writing_frame(word)
    assert len(knots_x) == 1 and ink_features(word).shape[1] == 8


def test_ink_lines_script_composes_writer_pure_lines_and_a_mixed_manifest(unipen_words, tmp_path):
    entries = [{"id": f"w{i}", "ink": ink_to_dict(w.ink), "text": w.label, "writer": "ab"[i % 2]}
               for i, w in enumerate(unipen_words[:30])]
    write_manifest(tmp_path / "train.jsonl", entries)
    for run in range(2):
        done = subprocess.run([sys.executable, str(REPO / "data_prep" / "ink_lines.py"), "--data", str(tmp_path),
                               "--splits", "train"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        if run == 0:
            first = (tmp_path / "train_lines.jsonl").read_text()
    assert (tmp_path / "train_lines.jsonl").read_text() == first  # the same lines every time
    lines = read_manifest(tmp_path / "train_lines.jsonl", ("text",))
    by_id = {e["id"]: e for e in entries}
    assert sorted(w for line in lines for w in line["words"]) == sorted(by_id)  # every word once
    for line in lines:
        assert {by_id[w]["writer"] for w in line["words"]} == {line["writer"]}
        assert line["text"] == " ".join(by_id[w]["text"] for w in line["words"])
    mixed = (tmp_path / "train_mixed.jsonl").read_text().splitlines()
    assert len(mixed) == len(entries) + len(lines) and json.loads(mixed[0])["id"] == "w0"
