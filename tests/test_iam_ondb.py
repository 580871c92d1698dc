"""data_prep/iam_ondb.py on tiny fake IAM-OnDB downloads: splits, texts, exact ink, bad files, hash fallback."""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
try:
    import speechrnn  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # a checkout without installing: use the repository root
    sys.path.insert(0, str(REPO))

from speechrnn.data import read_manifest  # noqa: E402
from speechrnn.ink import InkStore, load_ink, read_iam_ondb  # noqa: E402

spec = importlib.util.spec_from_file_location("data_prep_iam_ondb", REPO / "data_prep" / "iam_ondb.py")
iam = importlib.util.module_from_spec(spec)
spec.loader.exec_module(iam)

FIELDS = ("ink_filepath", "ink_index", "text")
SPLITS = ("train", "dev", "test")

# form id -> transcription (CSR block) lines; line files are written for `LINES[form]` line numbers
TEXTS = {
    "a01-012u": ["A MOVE to stop Mr. Gaitskell", "from nominating any more", "Labour life Peers"],
    "a01-012x": ["is to be made at a meeting", "of Labour MPs tomorrow."],
    "b02-011w": ["He said the bird", "flew over the hill"],  # no 3rd line although a -03.xml exists
    "c03-003a": ["the first line", "the second line"],
    "e05-002z": ["one more form"],
}
LINES = {"a01-012u": [1, 2, 3], "a01-012x": [1, 2], "b02-011w": [1, 2, 3], "c03-003a": [1, 2], "e05-002z": [1],
         "d04-001u": [1]}  # d04-001u has no ascii file
BAD_XML = "b02-011w-02"
NO_POINTS = "c03-003a-02"
NO_LINE = "b02-011w-03"
NO_ASCII = "d04-001u-01"


def stroke_xml(rng: np.random.Generator, t0: float) -> tuple[list[str], float]:
    strokes = []
    t = t0
    for _ in range(int(rng.integers(1, 4))):
        points = []
        for _ in range(int(rng.integers(2, 7))):
            x, y = int(rng.integers(300, 9000)), int(rng.integers(500, 3000))
            points.append(f'<Point x="{x}" y="{y}" time="{t:.2f}"/>')
            t += 0.01 * int(rng.integers(1, 3))
        strokes.append(f'<Stroke colour="black" start_time="{t0:.2f}" end_time="{t:.2f}">{"".join(points)}</Stroke>')
        t += 0.2
    return strokes, t


def write_line(path: Path, uid: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if uid == BAD_XML:
        path.write_text('<WhiteboardCaptureSession><StrokeSet><Stroke><Point x="1" y=', encoding="utf-8")
        return
    if uid == NO_POINTS:
        body = '<Stroke colour="black" start_time="1.0" end_time="1.0"></Stroke>'
    else:
        strokes, _ = stroke_xml(rng, 1034.79 + rng.integers(0, 1000))
        body = "".join(strokes)
    path.write_text('<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>'
                    '<WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>'
                    f"<StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>\n", encoding="utf-8")


def make_corpus(root: Path, split_lists: bool = True) -> Path:
    rng = np.random.default_rng(7)
    for form, numbers in LINES.items():
        top, base = form[:3], iam.form_base(form)
        for k in numbers:
            uid = f"{form}-{k:02d}"
            write_line(root / "lineStrokes" / top / base / f"{uid}.xml", uid, rng)
        if form in TEXTS:
            ascii_path = root / "ascii" / top / base / f"{form}.txt"
            ascii_path.parent.mkdir(parents=True, exist_ok=True)
            ascii_path.write_text("\n".join(["OCR:", "", "some printed text", "", "CSR:", "", *TEXTS[form], ""]),
                                  encoding="utf-8")
    # a writer id for a01-012u only (the others fall back to the form id without its letter)
    original = root / "original" / "a01" / "a01-012" / "strokesu.xml"
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_text('<WhiteboardCaptureSession><General><Form id="a01-012u" writerID="10058" />'
                        "</General></WhiteboardCaptureSession>", encoding="utf-8")
    if split_lists:
        (root / "trainset.txt").write_text("a01-012u\n\nb02-011w\n", encoding="utf-8")
        (root / "testset_v.txt").write_text("a01-012x\n", encoding="utf-8")
        (root / "testset_t.txt").write_text("c03-003a\nz99-999q\n\n", encoding="utf-8")  # z99-999q has no files
        (root / "testset_f.txt").write_text("e05-002z\n", encoding="utf-8")
    return root


def error_lines(stderr: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error:")]


def manifests(out: Path) -> dict[str, list[dict]]:
    return {split: read_manifest(out / f"{split}.jsonl", fields=FIELDS) for split in SPLITS}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The script run once as a subprocess on a corpus with the t1 split lists."""
    root = make_corpus(tmp_path_factory.mktemp("iam") / "IAM-OnDB")
    out = root.parent / "data"
    result = subprocess.run([sys.executable, "data_prep/iam_ondb.py", "--root", str(root), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    return root, out, result


def test_cli_split_lists_ids_and_texts(cli_run):
    root, out, result = cli_run
    assert result.returncode == 0, result.stderr
    got = manifests(out)
    assert [e["id"] for e in got["train"]] == ["a01-012u-01", "a01-012u-02", "a01-012u-03", "b02-011w-01"]
    assert [e["id"] for e in got["dev"]] == ["a01-012x-01", "a01-012x-02", "c03-003a-01"]  # testset_v + testset_t
    assert [e["id"] for e in got["test"]] == ["e05-002z-01"]  # testset_f
    for entries in got.values():
        for e in entries:
            form, k = e["id"].rsplit("-", 1)
            assert e["text"] == TEXTS[form][int(k) - 1]
            assert e["form"] == form
            assert e["source"] == f"lineStrokes/{form[:3]}/{iam.form_base(form)}/{e['id']}.xml"
    writers = {e["id"]: e["writer"] for entries in got.values() for e in entries}
    assert writers["a01-012u-02"] == "10058"  # from original/
    assert writers["a01-012x-01"] == "a01-012"  # form id without its letter
    assert writers["e05-002z-01"] == "e05-002"
    # ink_filepath is written relative to the manifest and indexes are 0..n-1 in order
    for split in SPLITS:
        raw = [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert {r["ink_filepath"] for r in raw} == {f"{split}_ink.npz"}
        assert [r["ink_index"] for r in raw] == list(range(len(raw)))


def test_cli_bad_files_one_line_each_and_summary(cli_run):
    root, out, result = cli_run
    errors = error_lines(result.stderr)
    assert len(errors) == 3, result.stderr
    by_file = {uid: [line for line in errors if f"{uid}.xml" in line] for uid in (BAD_XML, NO_POINTS, NO_LINE)}
    assert all(len(lines) == 1 for lines in by_file.values()), errors
    assert "not IAM-OnDB strokes XML" in by_file[BAD_XML][0]
    assert "no points" in by_file[NO_POINTS][0]
    assert "no line 3 in the CSR block" in by_file[NO_LINE][0] and "b02-011w.txt (it has 2)" in by_file[NO_LINE][0]
    warnings = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("warning:")]
    assert len(warnings) == 1 and "z99-999q" in warnings[0] and "testset_t.txt:2" in warnings[0]
    assert "skipped 3 line file(s)" in result.stdout
    assert "1 line file(s) of 1 form(s) in no split list" in result.stdout  # d04-001u
    assert "8 lines from 12 lineStrokes files" in result.stdout
    ids = {e["id"] for entries in manifests(out).values() for e in entries}
    assert not ids & {BAD_XML, NO_POINTS, NO_LINE, NO_ASCII}


def test_cli_ink_store_round_trips_exact_points(cli_run):
    root, out, _ = cli_run
    for split, entries in manifests(out).items():
        store = InkStore(out / f"{split}_ink.npz")
        assert len(store) == len(entries) and list(store.ids) == [e["id"] for e in entries]
        for e in entries:
            ref = read_iam_ondb(root / e["source"])
            ink = load_ink(e)
            assert ink.text == e["text"]
            assert e["num_points"] == ref.num_points and e["num_strokes"] == len(ref.strokes)
            assert len(ink.strokes) == len(ref.strokes)
            for got, want in zip(ink.strokes, ref.strokes):
                assert got.shape == want.shape == (len(want), 3)
                np.testing.assert_array_equal(got[:, :2], want[:, :2])  # integer screen coordinates: exact
                np.testing.assert_array_equal(got[:, 2], want[:, 2].astype(np.float32))  # time as float32
            assert ink.strokes[0][0, 2] == 0.0


def test_hash_fallback_deterministic_and_form_level(tmp_path, capsys):
    root = make_corpus(tmp_path / "IAM-OnDB", split_lists=False)
    first = iam.prepare(root, tmp_path / "one")
    err = capsys.readouterr().err
    errors = error_lines(err)
    assert len(errors) == 4, err  # without lists d04-001u is read too: its missing ascii is one more error
    assert len([e for e in errors if f"{NO_ASCII}.xml" in e and "no transcription" in e]) == 1
    second = iam.prepare(root, tmp_path / "two")
    capsys.readouterr()
    def strip(written):
        return {s: [{k: v for k, v in e.items() if k != "ink_filepath"} for e in written[s]] for s in SPLITS}

    assert strip(first) == strip(second)
    for split in SPLITS:
        assert (tmp_path / "one" / f"{split}.jsonl").read_text() == (tmp_path / "two" / f"{split}.jsonl").read_text()
    seen = {}
    for split, entries in first.items():
        for e in entries:
            base = iam.form_base(e["form"])
            bucket = int(hashlib.md5(base.encode()).hexdigest(), 16) % 10
            assert split == ("test" if bucket == 0 else "dev" if bucket == 1 else "train")
            assert seen.setdefault(base, split) == split  # a01-012u and a01-012x land together
    assert seen == {"a01-012": "dev", "b02-011": "train", "c03-003": "test", "e05-002": "train"}  # all 3 used
    assert sum(len(v) for v in first.values()) == 8


def test_hash_split_never_straddles_a_form():
    assert iam.form_base("a01-012u") == iam.form_base("a01-012x") == iam.form_base("a01-012") == "a01-012"
    assert iam.form_base("e05-265z") == "e05-265"
    buckets = set()
    for n in range(300):
        base = f"x{n % 7:02d}-{n:03d}"
        splits = {iam.hash_split(base + letter) for letter in ("", "u", "x", "w", "z")}
        assert len(splits) == 1
        buckets |= splits
    assert buckets == set(SPLITS)


def test_split_list_entry_without_letter_takes_all_copies(tmp_path, capsys):
    root = make_corpus(tmp_path / "IAM-OnDB", split_lists=False)
    lists = tmp_path / "task1"
    lists.mkdir()
    (lists / "trainset.txt").write_text("a01-012\nb02-011w\n", encoding="utf-8")  # base id: both a01-012u and -x
    (lists / "testset_v.txt").write_text("e05-002z\n", encoding="utf-8")
    (lists / "testset_t.txt").write_text("", encoding="utf-8")
    (lists / "testset_f.txt").write_text("c03-003a\n", encoding="utf-8")
    assert iam.main(["--root", str(root), "--out", str(tmp_path / "out"), "--splits", str(lists)]) == 0
    got = manifests(tmp_path / "out")
    assert {e["form"] for e in got["train"]} == {"a01-012u", "a01-012x", "b02-011w"}
    assert [e["id"] for e in got["dev"]] == ["e05-002z-01"]
    assert [e["id"] for e in got["test"]] == ["c03-003a-01"]
    assert len(error_lines(capsys.readouterr().err)) == 3


def test_bad_roots_and_partial_split_lists_are_one_line_errors(tmp_path, capsys):
    root = make_corpus(tmp_path / "IAM-OnDB", split_lists=False)
    (root / "trainset.txt").write_text("a01-012u\n", encoding="utf-8")
    assert iam.main(["--root", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "testset_v.txt" in err[0]
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert iam.main(["--root", str(root), "--out", str(tmp_path / "out"), "--splits", str(empty)]) == 1
    assert "no IAM-OnDB split lists" in capsys.readouterr().err
    assert iam.main(["--root", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no lineStrokes/ folder" in err[0]
