import re
import tarfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def unipen_words(shared_data) -> list:
    """The first 80 word segments (speechrnn.ink.UnipenSegment) of the first category-6 data file in the shared
    UNIPEN archive, read in place."""
    from speechrnn.ink import parse_unipen

    archive = shared_data / "unipen" / "train_r01_v07_cat6.tar.gz"
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.isfile() and re.match(r"(.*/)?data/6/.*\.dat$", member.name):
                name, text = member.name, tar.extractfile(member).read().decode("latin-1")
                break
    prefix = name[: name.index("data/6/")]
    wanted = {prefix + "include/" + rel for rel in re.findall(r"^\.INCLUDE\s+(\S+)", text, re.M)}
    includes = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                includes[member.name[len(prefix + "include/"):]] = tar.extractfile(member).read().decode("latin-1")
                if len(includes) == len(wanted):
                    break
    segments = []
    for segment in parse_unipen(name, text, includes.__getitem__, on_error=lambda err: None):
        segments.append(segment)
        if len(segments) == 80:
            break
    return segments


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run with one torch thread: small multi-threaded kernels are erratically slow on a busy 2-core box,
    and no result depends on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
