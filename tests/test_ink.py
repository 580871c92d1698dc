"""speechrnn.ink (readers, validation, features, augmentation) and data_prep/unipen.py, on tiny files written
here and on a few real words of the shared UNIPEN archive."""

import hashlib
import importlib.util
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
try:
    import speechrnn  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a checkout without installing: use the repository root
    sys.path.insert(0, str(REPO))

from speechrnn.data import read_manifest  # noqa: E402
from speechrnn.errors import UserError  # noqa: E402
from speechrnn.ink import (FEATURE_NAMES, Ink, InkError, InkFeatureConfig, InkStore, augment, check_ink,  # noqa: E402
                           featurize, ink_features, load_ink, normalize, parse_delineation, read_iam_ascii,
                           read_iam_ondb, read_inkml, read_json, read_unipen, resample, write_ink_store, write_json)



def load_prep():
    spec = importlib.util.spec_from_file_location("data_prep_unipen", REPO / "data_prep" / "unipen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def word(n: int = 40, x0: float = 0.0, seed: int = 0) -> np.ndarray:
    """A wavy stroke with time (100 points per second)."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0, 4 * np.pi, n)
    return np.column_stack([x0 + s * 10 + rng.normal(0, 0.2, n), 20 * np.sin(s) + rng.normal(0, 0.2, n),
                            np.arange(n) / 100.0])


def sample_ink() -> Ink:
    second = word(30, x0=140, seed=1)
    second[:, 2] += 0.6
    dot = np.array([[60.0, 45.0, 0.9], [60.5, 45.5, 0.91]])
    return Ink([word(40), second, dot], "word")


# ------------------------------------------------------------------------------------------------ UNIPEN

DOC = """.VERSION 1.0
.DATA_SOURCE test
.COORD X Y T
.POINTS_PER_SECOND 100
.X_DIM 1000
.Y_DIM 1000
"""

PEN = """.INCLUDE tst/tst.doc
.WRITER_ID writer_a
.WRITER_INFO
   some text 123 456
.PEN_UP
5 5 0
6 6 10
.PEN_DOWN
10 10 20
12 14 30
15 20 40
.PEN_UP
.PEN_DOWN
.PEN_UP
20 20 50
.PEN_DOWN
30 10 60
31 12 70
.PEN_UP
.PEN_DOWN
40 10 80
42 12 90
44 14 100
46 16 110
.PEN_UP
.PEN_DOWN
50 50 120
.PEN_UP
"""
# components (blocks with points; the empty .PEN_DOWN does not count):
#   0 up(2)  1 down(3)  2 up(1)  3 down(2)  4 down(4)  5 down(1)

DAT = r""".VERSION 1.0
.INCLUDE tst/data/pen.dat
.SEGMENT WORD 0-1 ? "ab"
.SEGMENT WORD 1,3 OK "say \"hi\""
.SEGMENT WORD 3-4 GOOD "cd"
.SEGMENT WORD 4:1-4:2 ? "e"
.SEGMENT TEXT 0-5 ? "ab say cd"
.SEGMENT WORD 5 ? "dot"
.SEGMENT WORD 4-9 ? "beyond"
"""


def write_unipen(root: Path, dat: str = DAT, pen: str = PEN, doc: str | None = DOC) -> Path:
    (root / "include" / "tst" / "data").mkdir(parents=True)
    (root / "data" / "6" / "tst").mkdir(parents=True)
    if doc is not None:
        (root / "include" / "tst" / "tst.doc").write_text(doc)
    (root / "include" / "tst" / "data" / "pen.dat").write_text(pen)
    path = root / "data" / "6" / "tst" / "one.dat"
    path.write_text(dat)
    return path


def test_unipen_segments_components_and_labels(tmp_path):
    dat = write_unipen(tmp_path)
    errors = []
    segments = list(read_unipen(dat, tmp_path, on_error=errors.append))
    labels = [label for label, _, _ in segments]
    assert labels == ["ab", 'say "hi"', "cd", "e"]  # TEXT level skipped; the dot and "beyond" are bad
    assert {writer for _, _, writer in segments} == {"writer_a"}
    ab, hi, cd, e = (ink for _, ink, _ in segments)
    # pen-up points (hovering) are dropped, only pen-down strokes remain
    assert len(ab.strokes) == 1 and ab.strokes[0][:, :2].tolist() == [[10, 10], [12, 14], [15, 20]]
    assert [len(s) for s in hi.strokes] == [3, 2] and [len(s) for s in cd.strokes] == [2, 4]
    assert e.strokes[0][:, :2].tolist() == [[42, 12], [44, 14]]
    # T channel in ms -> seconds from the word's first point
    assert ab.has_time and np.allclose(ab.strokes[0][:, 2], [0.0, 0.01, 0.02])
    assert np.allclose(cd.strokes[1][:, 2], [0.02, 0.03, 0.04, 0.05])
    assert len(errors) == 2 and all(isinstance(err, InkError) for err in errors)
    assert "single point" in str(errors[0]) and "'dot'" in str(errors[0])
    assert "past the end" in str(errors[1]) and "segment 6" in str(errors[1]) and str(dat) in str(errors[1])
    assert all("\n" not in str(err) for err in errors)


def test_unipen_bad_segment_raises_without_handler(tmp_path):
    dat = write_unipen(tmp_path, dat='.INCLUDE tst/data/pen.dat\n.SEGMENT WORD 2-40 ? "x"\n')
    with pytest.raises(InkError, match=r"one\.dat segment 0 .*past the end"):
        list(read_unipen(dat, tmp_path))


def test_unipen_time_from_points_per_second_and_header_defaults(tmp_path):
    pen = ".WRITER_ID w\n.PEN_DOWN\n1 1\n2 2\n3 3\n.PEN_UP\n.DT 500\n.PEN_DOWN\n5 5\n6 6\n"
    dat = write_unipen(tmp_path, dat='.INCLUDE tst/tst.doc\n.INCLUDE tst/data/pen.dat\n.SEGMENT WORD 0-1 ? "ab"\n',
                       pen=pen, doc=".COORD X Y\n.POINTS_PER_SECOND 100\n")
    (_, ink, _), = read_unipen(dat, tmp_path)
    assert np.allclose(ink.strokes[0][:, 2], [0, 0.01, 0.02])
    assert np.allclose(ink.strokes[1][:, 2], [0.53, 0.54])  # 3 samples + a 500 ms .DT gap
    dat.write_text('.INCLUDE tst/data/pen.dat\n.SEGMENT WORD 0-1 ? "ab"\n')  # no doc: X Y, no time
    (_, ink, _), = read_unipen(dat, tmp_path)
    assert not ink.has_time and ink.num_points == 5
    # x y pressure (no time), CRLF line ends, an implausible rate (a header error): no time channel
    pen = ".COORD X Y P\r\n.POINTS_PER_SECOND 9600\r\n.PEN_DOWN\r\n1 1 300\r\n2 2 310\r\n"
    (tmp_path / "include" / "tst" / "data" / "pen.dat").write_text(pen)
    dat.write_text('.INCLUDE tst/data/pen.dat\r\n.SEGMENT WORD 0 ? "a"\r\n')
    (label, ink, _), = read_unipen(dat, tmp_path)
    assert label == "a" and not ink.has_time and ink.strokes[0].tolist() == [[1, 1], [2, 2]]
    (tmp_path / "include" / "tst" / "data" / "pen.dat").write_text(".PEN_DOWN\n1 1\n2 x\n")
    with pytest.raises(InkError, match=r"pen\.dat: line 1: \.PEN_DOWN block: 'x' in pen data is not a number"):
        list(read_unipen(dat, tmp_path))


def test_unipen_missing_include(tmp_path):
    dat = write_unipen(tmp_path, dat='.INCLUDE tst/data/gone.dat\n.SEGMENT WORD 0 ? "a"\n.SEGMENT WORD 1 ? "b"\n')
    with pytest.raises(InkError, match=r"\.INCLUDE tst/data/gone\.dat not found.*2 segments are skipped"):
        list(read_unipen(dat, tmp_path))
    # a missing description file next to present pen data is only a warning
    (tmp_path / "include" / "tst" / "tst.doc").unlink()
    warnings = []
    segments = list(read_unipen(write_unipen(tmp_path / "b", doc=None), tmp_path / "b", on_error=lambda e: None,
                                on_warning=warnings.append))
    assert len(segments) == 4 and len(warnings) == 1 and "tst/tst.doc not found" in warnings[0]


def test_parse_delineation():
    assert parse_delineation("3-5,7") == [(3, None, 5, None), (7, None, 7, None)]
    assert parse_delineation("12:40-14:9") == [(12, 40, 14, 9)]
    assert parse_delineation("4") == [(4, None, 4, None)]
    for bad in ("5-3", "a-b", "", "1-2-3"):
        with pytest.raises(ValueError):
            parse_delineation(bad)


# ------------------------------------------------------------------------------------------------ XML / JSON

INKML = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
  <traceFormat><channel name="X" type="decimal"/><channel name="Y" type="decimal"/>
    <channel name="T" type="integer"/></traceFormat>
  <annotation type="truth">hello</annotation>
  <trace id="0">10 20 100, 11 22 110, 13 25 120</trace>
  <traceGroup><annotation type="truth">h</annotation>
    <trace id="1">30 20 300,31 21 310</trace></traceGroup>
</ink>
"""


def test_read_inkml(tmp_path):
    path = tmp_path / "a.inkml"
    path.write_text(INKML)
    ink = read_inkml(path)
    assert ink.text == "hello" and [len(s) for s in ink.strokes] == [3, 2] and ink.has_time
    assert ink.strokes[1][0].tolist() == [30, 20, 200]  # time relative to the first point
    path.write_text('<ink xmlns="http://www.w3.org/2003/InkML"><trace>1 2, 3 4, 5 6</trace></ink>')
    ink = read_inkml(path)
    assert ink.text is None and not ink.has_time and ink.num_points == 3


@pytest.mark.parametrize("content, message", [
    ("this is not xml at all", "not InkML"),
    ("<html><body/></html>", "expected <ink>"),
    ('<ink xmlns="http://www.w3.org/2003/InkML"><trace>1 2, a b</trace></ink>', "not plain numbers"),
    ('<ink xmlns="http://www.w3.org/2003/InkML"></ink>', "no points"),
])
def test_read_inkml_bad(tmp_path, content, message):
    path = tmp_path / "bad.inkml"
    path.write_text(content)
    with pytest.raises(InkError, match=message) as info:
        read_inkml(path)
    assert str(path) in str(info.value) and isinstance(info.value, UserError)


def test_read_iam_ondb(tmp_path):
    xml = tmp_path / "a01-000u-01.xml"
    xml.write_text("""<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession><WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>
<StrokeSet>
 <Stroke colour="black" start_time="769.05" end_time="769.64">
  <Point x="1073" y="1058" time="769.05"/><Point x="1072" y="1085" time="769.07"/>
  <Point x="1075" y="1120" time="769.08"/>
 </Stroke>
 <Stroke colour="black" start_time="770.0" end_time="770.1">
  <Point x="1100" y="1060" time="770.0"/><Point x="1110" y="1070" time="770.1"/>
 </Stroke>
</StrokeSet></WhiteboardCaptureSession>""")
    ink = read_iam_ondb(xml)
    assert [len(s) for s in ink.strokes] == [3, 2] and ink.has_time
    assert np.isclose(ink.strokes[1][0, 2], 0.95) and ink.strokes[0][0, 2] == 0
    ascii_file = tmp_path / "a01-000u.txt"
    ascii_file.write_text("OCR:\n\nA MOVE to stop\n\nCSR:\n\nA MOVE to stop Mr. Gaitskell\nfrom nominating\n\n")
    assert read_iam_ascii(ascii_file) == ["A MOVE to stop Mr. Gaitskell", "from nominating"]
    ascii_file.write_text("OCR:\n\nno csr here\n")
    with pytest.raises(InkError, match="CSR"):
        read_iam_ascii(ascii_file)
    xml.write_text("<WhiteboardCaptureSession><StrokeSet><Stroke><Point x='a' y='1'/></Stroke></StrokeSet>"
                   "</WhiteboardCaptureSession>")
    with pytest.raises(InkError, match="numeric"):
        read_iam_ondb(xml)


def test_json_round_trip_and_store(tmp_path):
    ink = sample_ink()
    write_json(ink, tmp_path / "a.json")
    back = read_json(tmp_path / "a.json")
    assert back.text == "word" and all(np.allclose(a, b) for a, b in zip(ink.strokes, back.strokes))
    write_json(ink, tmp_path / "r.json", decimals=1)
    assert all(np.allclose(a, b, atol=0.05) for a, b in zip(ink.strokes, read_json(tmp_path / "r.json").strokes))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InkError, match="not JSON"):
        read_json(tmp_path / "bad.json")
    untimed = Ink([np.array([[0.0, 0], [1, 1]])], "x")
    write_ink_store(tmp_path / "s.npz", [ink, untimed], ids=["a", "b"])
    store = InkStore(tmp_path / "s.npz")
    assert len(store) == 2 and store[0].has_time and not store[1].has_time
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(ink.strokes, store[0].strokes))
    assert load_ink({"id": "b", "ink_filepath": str(tmp_path / "s.npz"), "ink_index": 1, "text": "x"}).text == "x"
    inline = load_ink({"id": "c", "ink": {"strokes": [[[0, 0], [1, 2]]]}, "text": "y"})
    assert inline.num_points == 2 and inline.text == "y"


# ------------------------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("strokes, message", [
    ([], "no points"),
    ([np.zeros((0, 2))], "no points"),
    ([np.array([[1.0, 2.0]])], "single point"),
    ([np.array([[1.0, 2.0]]), np.zeros((0, 2))], "single point"),
    ([np.array([[0.0, 0], [1, np.nan]])], "not finite"),
    ([np.array([[0.0, 0], [np.inf, 1]])], "not finite"),
    ([np.zeros((3, 4))], "shape"),
    ([np.zeros((3, 2)), np.zeros((3, 3))], "mix"),
])
def test_check_ink_rejects(strokes, message):
    with pytest.raises(InkError, match=message) as info:
        check_ink(Ink(strokes), "f.dat segment 3")
    assert str(info.value).startswith("f.dat segment 3: ") and "\n" not in str(info.value)


def test_time_going_backwards_is_retimed_with_one_warning(capsys):
    stroke = np.array([[0.0, 0, 0.0], [1, 1, 0.2], [2, 2, 0.17], [3, 3, 0.15], [4, 4, 0.3]])
    for _ in range(2):  # warned once per source, however often it is read
        ink = check_ink(Ink([stroke.copy(), stroke[:2].copy()]), "tablet.json")
        assert ink.strokes[0][:, 2].tolist() == [0.0, 0.2, 0.2, 0.2, 0.3]
        assert ink.strokes[0][:, :2].tolist() == stroke[:, :2].tolist()  # the points and their order kept
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: tablet.json: time goes backwards at 2 point(s)"), lines
    assert "stroke 0 point 2" in lines[0] and "50 ms" in lines[0]


def test_check_ink_accepts_time_across_strokes():
    # time may restart between strokes (only within a stroke must it not go back)
    check_ink(Ink([np.array([[0.0, 0, 5], [1, 1, 6]]), np.array([[0.0, 0, 1], [1, 1, 2]])]), "x")


# ------------------------------------------------------------------------------------------------ features

def test_features_shape_finite_and_invariance():
    ink = sample_ink()
    feats = ink_features(ink)
    assert feats.dtype == np.float32 and feats.ndim == 2 and feats.shape[1] == len(FEATURE_NAMES) == 8
    assert np.isfinite(feats).all()
    assert feats[:, 2].sum() == 3 and feats[-1, 2] == 1  # one pen-up flag per stroke end
    assert np.allclose(np.hypot(feats[:, 3], feats[:, 4])[feats[:, 2] == 0], 1, atol=1e-5)
    assert np.allclose(feats[:, 5] ** 2 + feats[:, 6] ** 2, 1, atol=1e-5)
    # 3x bigger and moved elsewhere: the same features
    big = Ink([np.column_stack([s[:, :2] * 3 + [500, -200], s[:, 2:]]) for s in ink.strokes])
    assert np.allclose(ink_features(big), feats, atol=1e-4)
    timed = ink_features(ink, use_time=True)
    assert timed.shape == (len(feats), 9) and np.isfinite(timed).all() and (timed[:, 8] >= 0).all()
    # y-down input with flip_y gives the y-up features
    flipped = Ink([s * [1, -1, 1] for s in ink.strokes])
    assert np.allclose(ink_features(flipped, flip_y=True), feats, atol=1e-4)
    with pytest.raises(InkError, match="time"):
        ink_features(Ink([s[:, :2] for s in ink.strokes]), use_time=True)


def test_features_degenerate_inks_are_finite():
    for strokes in ([np.array([[5.0, 5], [5, 5], [5, 5]])],  # a dot
                    [np.array([[0.0, 0], [100, 0]])],  # a dash
                    [np.array([[0.0, 0]]), np.array([[3.0, 4]])]):  # two one-point strokes
        feats = ink_features(Ink(strokes))
        assert len(feats) >= 1 and np.isfinite(feats).all()


def test_resample_spacing():
    ink = normalize(sample_ink())
    for spacing in (0.05, 0.2):
        out = resample(ink, spacing)
        assert len(out.strokes) == len(ink.strokes)
        for before, after in zip(ink.strokes, out.strokes):
            steps = np.hypot(*np.diff(after[:, :2], axis=0).T)
            assert np.allclose(after[0], before[0]) and np.allclose(after[-1], before[-1])
            # chords of the resampled path are at most the spacing and nearly equal
            assert steps.max() <= spacing + 1e-9
            if len(steps) > 1:
                assert steps.min() > 0.5 * spacing
            else:  # a stroke shorter than the spacing (the i-dot) keeps its two ends
                assert len(before) == 2
            assert np.all(np.diff(after[:, 2]) >= 0)  # time interpolated, still increasing
    assert len(ink_features(ink, spacing=0.05)) > 2 * len(ink_features(ink, spacing=0.15))


def test_augment_is_deterministic_and_varies():
    ink = sample_ink()
    config = InkFeatureConfig(augment=True)
    a = augment(ink, np.random.default_rng(7), config)
    b = augment(ink, np.random.default_rng(7), config)
    c = augment(ink, np.random.default_rng(8), config)
    assert all(np.array_equal(x, y) for x, y in zip(a.strokes, b.strokes))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a.strokes, c.strokes))
    assert len(a.strokes) == len(ink.strokes) and a.text == ink.text
    no_jitter = InkFeatureConfig(augment=True, aug_jitter=0)
    d = augment(ink, np.random.default_rng(7), no_jitter)
    assert [len(s) for s in d.strokes] == [len(s) for s in ink.strokes]
    assert all(np.array_equal(x[:, 2], y[:, 2]) for x, y in zip(d.strokes, ink.strokes))  # time kept
    off = InkFeatureConfig(aug_scale=0, aug_shear=0, aug_rotate=0, aug_jitter=0, aug_gap=0)
    assert all(np.allclose(x, y) for x, y in zip(augment(ink, np.random.default_rng(1), off).strokes, ink.strokes))
    feats = featurize(ink, config, np.random.default_rng(3))
    assert np.isfinite(feats).all() and feats.shape[1] == config.num_features
    assert np.array_equal(featurize(ink, config), ink_features(ink, spacing=config.spacing))  # no rng: no aug


# ------------------------------------------------------------------------------------------------ data_prep

def add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def fake_corpus(writers: list[str]) -> dict[str, str]:
    """Zenodo layout (a top folder, then data/ and include/), one data file per writer, plus one whose pen
    data is missing and one with a segment past the end."""
    files = {"top/include/tst/tst.doc": DOC}
    for n, writer in enumerate(writers):
        files[f"top/include/tst/data/p{n}.dat"] = PEN.replace("writer_a", writer)
        files[f"top/data/6/tst/w{n}.dat"] = DAT.replace("tst/data/pen.dat", f"tst/data/p{n}.dat")
    files["top/data/6/tst/lost.dat"] = '.INCLUDE tst/data/lost.dat\n.SEGMENT WORD 0 ? "a"\n'
    files["top/data/7/tst/w0.dat"] = files["top/data/6/tst/w0.dat"]  # another category: ignored
    return files


def test_data_prep_unipen_archive_and_folder(tmp_path, capsys):
    prep = load_prep()
    writers = [f"writer{n}" for n in range(12)]
    files = fake_corpus(writers)
    archive = tmp_path / "unipen.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(files, key=lambda n: "include" in n):  # data files first: pen data in pass 2
            add(tar, name, files[name])
    assert prep.main(["--archive", str(archive), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr()
    assert "lost.dat" in out.out and "1 segments" in out.out
    assert "skipped 24 segment(s)" in out.out  # the dot and "beyond" of each of 12 files
    entries = {split: read_manifest(tmp_path / "a" / f"{split}.jsonl", fields=("ink_filepath", "ink_index", "text"))
               for split in ("train", "dev", "test")}
    assert sum(len(e) for e in entries.values()) == 4 * len(writers)
    for split, lines in entries.items():
        for entry in lines:
            bucket = int(hashlib.md5(entry["writer"].encode()).hexdigest(), 16) % 10
            assert split == {0: "test", 1: "dev"}.get(bucket, "train")
            assert load_ink(entry).num_points == entry["num_points"]
    texts = {e["text"] for lines in entries.values() for e in lines}
    assert texts == {"ab", 'say "hi"', "cd", "e"}
    # the same corpus extracted: the same manifests
    for name, text in files.items():
        (tmp_path / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / name).write_text(text)
    assert prep.main(["--src", str(tmp_path / "x"), "--out", str(tmp_path / "b")]) == 0
    for split in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{split}.jsonl").read_text() == (tmp_path / "b" / f"{split}.jsonl").read_text()
    assert prep.main(["--src", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")]) == 1


def test_real_unipen_words(unipen_words):
    """~20 words of the first data file in the shared archive: labels, writers and finite features."""
    segments = unipen_words[:20]
    assert len(segments) == 20
    for segment in segments:
        assert segment.label.strip() and segment.writer
        feats = ink_features(segment.ink)
        assert np.isfinite(feats).all() and len(feats) >= 2 * len(segment.label)


def test_augmented_real_words_keep_their_length(unipen_words):
    """Augmentation must not change how many points a word is resampled to (jittering the raw tablet points
    once doubled it): train and test inputs would differ in density, and training would be twice as slow."""
    inks = [segment.ink for segment in unipen_words[:40]]
    config = InkFeatureConfig(augment=True)
    rng = np.random.default_rng(0)
    plain = sum(len(featurize(ink, config)) for ink in inks)
    augmented = sum(len(featurize(ink, config, rng)) for ink in inks)
    assert 0.85 < augmented / plain < 1.15, augmented / plain
