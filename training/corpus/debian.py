"""Debian packages as sources: `apt-get download` into the cache, the files the corpus reads extracted
with dpkg-deb, the version and the licences of debian/copyright."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from training.corpus.files import ARCHIVE_EXT, AUDIO_EXT, unpack_zips


def download(pkg: str, cache: str) -> str:
    debs = sorted(glob.glob(os.path.join(cache, f"{pkg}_*.deb")))
    if not debs:
        subprocess.run(["apt-get", "download", pkg], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
        debs = sorted(glob.glob(os.path.join(cache, f"{pkg}_*.deb")))
    if not debs:
        raise RuntimeError(f"no .deb for {pkg}")
    return debs[-1]


def extract(deb: str, cache: str, pkg: str) -> str:
    dest = os.path.join(cache, "extract", pkg)
    marker = os.path.join(dest, ".extracted")
    if not os.path.exists(marker):
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        # only what the corpus reads (audio, archives, text side files, copyright): flightgear's
        # 1.8 GB of data holds 158 sounds
        patterns = [f"*{e}" for e in (*AUDIO_EXT, *ARCHIVE_EXT, ".txt", ".sf2", ".sf3")] + ["*/copyright"]
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        # tar exits 2 when a pattern matches nothing
        rc = subprocess.run(["tar", "-x", "-C", dest, "--wildcards", "--ignore-case", *patterns],
                            stdin=tar.stdout, stderr=subprocess.DEVNULL).returncode
        if tar.wait() or rc not in (0, 2):
            raise RuntimeError(f"extracting {deb} failed (dpkg-deb {tar.returncode}, tar {rc})")
        Path(marker).write_text(os.path.basename(deb))
    unpack_zips(dest)
    return dest


def deb_version(deb: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                          capture_output=True, text=True).stdout.strip()


def licences(root: str, pkg: str) -> str:
    cp = Path(root) / "usr/share/doc" / pkg / "copyright"
    if not cp.exists():
        return "unknown"
    lic = []
    for line in cp.read_text(errors="ignore").splitlines():
        if line.startswith("License:"):
            v = line.split(":", 1)[1].strip()
            if v and v not in lic:
                lic.append(v)
    return " | ".join(lic) if lic else "see copyright (non machine-readable)"
