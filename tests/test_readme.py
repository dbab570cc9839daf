"""README.md's Python examples run as written, so they cannot rot.

Each fenced ```python block runs in a fresh namespace, in a folder holding the example sounds that
README's first command makes (`python examples/make_example_audio.py`), with the bundled weights.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8") if README.exists() else "",
                    flags=re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_example_audio.py"),
                    "--output-dir", str(folder / "examples" / "audio")], check=True, capture_output=True)
    return folder


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, workdir, monkeypatch):
    extras = (("sklearn", "sklearn"), ("pyarrow", "parquet"), ("pandas", "import pandas"), ("ray", "import ray"))
    for module, sign in extras:
        if sign in code:  # an example of an optional extra
            pytest.importorskip(module)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the examples need no network
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        if "import ray" in code:  # the example starts Ray in this process
            import ray

            ray.shutdown()
