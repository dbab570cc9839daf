"""A short run of examples/soak.py: generated files, SIGKILLs and restarts, shards, two writers, a full disk."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
SOAK = Path(__file__).resolve().parents[1] / "examples" / "soak.py"


def test_short_soak(tmp_path):
    p = subprocess.run([sys.executable, str(SOAK), "--files", "60", "--kills", "5", "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=600)
    summary = [line for line in p.stdout.splitlines() if line.startswith("files ")]
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert summary and "duplicates 0, mismatches 0, lost 0" in summary[0]
    kills = int(summary[0].split("kills ")[1].split(",")[0])
    assert kills >= 1  # at least one run was really killed (the others may finish before their kill)
