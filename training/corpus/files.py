"""The audio files of a source folder, and the audio inside its game archives (zip, pk3, wz)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

AUDIO_EXT = {".ogg", ".oga", ".wav", ".flac", ".mp3"}
ARCHIVE_EXT = (".zip", ".pk3", ".wz")  # game archives are zip files


def find_audio(root: str) -> List[str]:
    """Relative paths of audio files under root (symlink duplicates removed), sorted."""
    out, seen = [], set()
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for fn in sorted(fns):
            if Path(fn).suffix.lower() not in AUDIO_EXT:
                continue
            full = os.path.join(dp, fn)
            real = os.path.realpath(full)
            if not os.path.isfile(real) or not real.startswith(os.path.realpath(root)):
                continue
            if real in seen:
                continue
            seen.add(real)
            out.append(os.path.relpath(full, root))
    return out


def unpack_zips(root: str):
    """Extract audio members of game archives (0ad's mod zips, pk3, wz) next to them, into
    <archive>_zip/: a plain file scan would miss their effects."""
    import zipfile
    for dp, _, fns in os.walk(root):
        for fn in fns:
            stem, ext = os.path.splitext(fn)
            if ext.lower() not in ARCHIVE_EXT or dp.endswith("_zip"):
                continue
            zp = os.path.join(dp, fn)
            dest = os.path.join(dp, stem + "_zip")
            marker = os.path.join(dest, ".unzipped")
            if os.path.exists(marker):
                continue
            try:
                with zipfile.ZipFile(zp) as z:
                    for m in z.namelist():
                        if Path(m).suffix.lower() in AUDIO_EXT and ".." not in m and not m.startswith("/"):
                            z.extract(m, dest)
            except zipfile.BadZipFile:
                continue
            os.makedirs(dest, exist_ok=True)
            Path(marker).write_text(fn)
