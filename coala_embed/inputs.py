"""Command-line inputs: files, folders (searched recursively for audio files) and glob patterns.

Each file comes with the sub-folder its output keeps under --output-dir (its layout below the folder or
the pattern's fixed part it was found under), and that folder is its root: its key, the identity that
outputs, resume and shards use (coala_embed.sinks.identify), is its path relative to the root.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
    ".caf", ".w64", ".rf64", ".voc", ".sd2", ".nist", ".sph", ".htk", ".ircam", ".sf", ".paf", ".pvf",
    ".xi", ".avr", ".mat", ".mat4", ".mat5", ".wve", ".mpc", ".svx", ".8svx",
})
GLOB_CHARS = set("*?[")


def is_audio_name(path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def expand_inputs(inputs) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders (recursive) and globs.

    Returns ([(audio file, output sub-folder relative to the output dir)], [problems]); each problem
    names its input. Explicitly named files are taken whatever their extension (a non-audio file is then
    reported when it fails to decode); files found in folders or by patterns must have an audio extension.
    Duplicates (the same file reached twice) are kept once.
    """
    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    seen: set = set()

    def add(path: Path, rel: Path):
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append((path, rel))

    def add_dir(folder: Path, rel_base: Path):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_name(p) and not _hidden(p, folder))
        if not files:
            problems.append(f"{folder}: no audio files in this folder (looked for {', '.join(sorted(_COMMON))}, ...)")
        for p in files:
            add(p, rel_base / p.parent.relative_to(folder))

    for item in inputs:
        item = os.path.expanduser(str(item))
        path = Path(item)
        if path.is_dir():
            add_dir(path, Path())
        elif path.exists():
            add(path, Path())
        elif GLOB_CHARS & set(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                problems.append(f"{item}: no files match this pattern")
            base = _glob_base(item)  # matches keep their layout below the pattern's fixed part
            for m in matches:
                mp = Path(m)
                rel = _relative_or_flat(mp.parent, base)
                if mp.is_dir():
                    add_dir(mp, _relative_or_flat(mp, base))
                elif is_audio_name(mp):
                    add(mp, rel)
        else:
            problems.append(f"{item}: no such file or folder")
    return found, problems


_COMMON = (".wav", ".flac", ".ogg", ".mp3", ".aiff")


def _glob_base(pattern: str) -> Path:
    """The leading folders of a pattern that contain no wildcard: 'data/**/*.wav' -> 'data'."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def _relative_or_flat(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:
        return Path()


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def root_of(path: Path, rel: Path) -> Path:
    """The folder a file was found under: its parent less the sub-folders it keeps under --output-dir."""
    root = path.parent
    for _ in rel.parts:
        root = root.parent
    return root
