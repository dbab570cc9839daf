"""Packaging: the wheel carries the package, the weights folder inside it, and the console script."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents(tmp_path):
    pytest.importorskip("setuptools")
    if not (ROOT / "setup.py").exists():
        pytest.skip("not a source checkout")
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "feats",
                                                              "audio", "runs", "tests", "training"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "--no-index", "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    if p.returncode:
        pytest.skip(f"cannot build a wheel here: {p.stderr.strip().splitlines()[-1:]}")
    (wheel,) = tmp_path.glob("coala_embed-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("__init__", "audio", "checkpoint", "cli", "core", "hear", "model", "sklearn"):
        assert f"coala_embed/{module}.py" in names
    assert "coala_embed/weights/README.md" in names
    for bundled in ROOT.glob("weights/*"):
        if bundled.suffix in (".json", ".safetensors", ".onnx", ".md"):
            assert f"coala_embed/weights/{bundled.name}" in names
    assert not any(n.startswith(("tests/", "training/", "examples/")) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "coala-embed = coala_embed.cli:main" in entry_points
