"""README's ONNX example runs with onnxruntime and soundfile alone (speechrnn not importable) on an export of the
shipped AN4 model, reads what the model reads greedily, and the export's metadata is strict JSON."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AN4_WAVS = sorted((REPO.parent / "shared" / "data" / "an4").rglob("*.wav"))[:2]

pytest.importorskip("onnxruntime")


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- onnx-example -->\n```python\n(.*?)```", text, re.S).group(1)


def strict(value: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(value, parse_constant=refuse)


@pytest.mark.skipif(not AN4_WAVS, reason="needs ../shared/data/an4")
def test_the_readme_onnx_example_runs_without_speechrnn(tmp_path):
    import onnxruntime

    from speechrnn.recognizer import Recognizer

    onnx_path = tmp_path / "an4.onnx"
    export = subprocess.run([sys.executable, "-m", "speechrnn", "export", "an4", "--onnx", str(onnx_path)],
                            capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr
    meta = onnxruntime.InferenceSession(str(onnx_path)).get_modelmeta().custom_metadata_map
    for key in ("vocabulary", "features", "text", "config", "extra"):
        strict(meta[key])  # the tuned decoder's oov_margin of inf is the string "inf"
    assert "model" not in strict(meta["extra"]).get("aligner", {})

    script = tmp_path / "example.py"
    script.write_text(readme_example())
    blocked = (f"import sys; sys.modules['speechrnn'] = None; sys.argv = sys.argv[1:]; "
               f"exec(open({str(script)!r}).read())")
    recognizer = Recognizer.load("an4", decoding="greedy", gate=False)
    for wav in AN4_WAVS:
        run = subprocess.run([sys.executable, "-c", blocked, str(script), str(onnx_path), str(wav)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == recognizer.transcribe(str(wav)).text.strip()
