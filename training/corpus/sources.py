"""training/sources.csv, the list the corpus is built from, and bringing one of its sources here: a
Debian package, a GitHub snapshot or espeak-ng (a folder of its files, its version and licence)."""
from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple

from training.corpus import debian
from training.corpus.clips import safe_name
from training.corpus.files import find_audio
from training.corpus.github import GITHUB, export_snapshot, github_licence, snapshot_git_dir

DEFAULT_SOURCES = Path(__file__).resolve().parents[1] / "sources.csv"


def load_sources(path) -> List[dict]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["package"] and not r["package"].startswith("#")]


def obtain(row: dict, cache: str, snapshots: Optional[str]) -> Tuple[str, dict]:
    """Bring a source here: (folder of its files, {"version", "licence", ...})."""
    name = row["package"]
    if name.startswith(GITHUB):
        repo, commit = name[len(GITHUB):], row["version"]
        if not snapshots:
            raise RuntimeError("a GitHub source needs --snapshots")
        root = os.path.join(cache, "github", f"{safe_name(repo)}@{commit[:12]}")
        exp = export_snapshot(snapshot_git_dir(snapshots, repo), commit, root)
        return root, {"version": commit, "licence": row.get("licence") or github_licence(root),
                      "missing_blobs": len(exp["missing"])}
    if row["kind"] == "espeak":
        ver = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True, text=True).stdout
        return os.path.join(cache, "espeak"), {"version": ver.split(":")[0].strip(), "licence": row.get("licence")}
    deb = debian.download(name, cache)
    root = debian.extract(deb, cache, name)
    return root, {"version": debian.deb_version(deb), "licence": row.get("licence") or debian.licences(root, name),
                  "deb": os.path.basename(deb)}


def source_files(root: str, row: dict) -> List[str]:
    """The audio files of a source, restricted to the ``paths`` regular expression if given."""
    files = find_audio(root)
    return [f for f in files if re.search(row["paths"], f)] if row.get("paths") else files
