"""GitHub repositories as sources (`github:owner/name` pinned to a commit): the files the corpus reads,
from a local git snapshot or clone, read with `git ls-tree` / `git cat-file` (nothing is cloned here)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from training.corpus.files import ARCHIVE_EXT, AUDIO_EXT, unpack_zips

GITHUB = "github:"
SIDE_EXT = {".txt", ".md", ".json", ".csv"}  # small text files taggers may read (credits, descriptions)
SIDE_MAX_BYTES = 1 << 20


def _git(git_dir: str, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True, **kw)


def snapshot_git_dir(snapshots: str, repo: str) -> str:
    """The git directory of ``owner/name`` under ``snapshots``: <owner+name>/repo[/.git],
    <owner+name>[/.git], <owner>/<name>[.git][/.git] (a bare snapshot or a clone)."""
    owner, name = repo.split("/", 1)
    for base in (f"{owner}+{name}/repo", f"{owner}+{name}", f"{owner}/{name}", f"{owner}/{name}.git"):
        for d in (os.path.join(snapshots, base, ".git"), os.path.join(snapshots, base)):
            if os.path.isdir(d) and subprocess.run(["git", "--git-dir", d, "rev-parse", "--git-dir"],
                                                   capture_output=True).returncode == 0:
                return d
    raise RuntimeError(f"no git snapshot of {repo} under {snapshots}")


def export_snapshot(git_dir: str, commit: str, dest: str) -> dict:
    """Write the audio files, game archives and small text files of ``commit`` into ``dest``.

    Blobs are read with ``git cat-file --batch`` (no work tree, no checkout): a snapshot may lack
    some blobs (large files, LFS), which are listed as missing rather than failing the source."""
    marker = os.path.join(dest, ".exported")
    if os.path.exists(marker):
        return json.loads(Path(marker).read_text())
    try:
        _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:
        raise RuntimeError(f"commit {commit} not in {git_dir}")
    listing = _git(git_dir, "ls-tree", "-r", "-l", "-z", commit).stdout.split(b"\0")
    wanted = []
    for entry in filter(None, listing):
        meta, path = entry.split(b"\t", 1)
        _, kind, sha, size = meta.split()
        path = path.decode("utf-8", "surrogateescape")
        ext = Path(path).suffix.lower()
        if kind != b"blob" or ".." in Path(path).parts:
            continue
        if ext in AUDIO_EXT or ext in ARCHIVE_EXT or (ext in SIDE_EXT and int(size) <= SIDE_MAX_BYTES) \
                or Path(path).name.upper().startswith(("LICENSE", "COPYING", "CREDITS", "README")):
            wanted.append((sha.decode(), path))
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    missing = []
    with subprocess.Popen(["git", "--git-dir", git_dir, "cat-file", "--batch"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as proc:
        for sha, path in wanted:  # one request at a time: a blob's size is known only from its header
            proc.stdin.write(sha.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().split()
            if header[-1] == b"missing":
                missing.append(path)
                continue
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)
            out = os.path.join(dest, path)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(data)
        proc.stdin.close()
    unpack_zips(dest)
    info = {"files": len(wanted) - len(missing), "missing": missing}
    Path(marker).write_text(json.dumps(info))
    return info


def github_licence(root: str) -> str:
    """First line of the repository's licence file, for the record (sources.csv says more)."""
    for p in sorted(Path(root).glob("*")):
        if p.is_file() and p.name.upper().startswith(("LICENSE", "COPYING")):
            for line in p.read_text(errors="ignore").splitlines():
                if line.strip():
                    return line.strip()[:80]
    return "no licence file"
