"""Build the COALA-style training corpus (audio clips + tags) from Debian packages and GitHub snapshots.

    python -m training.corpus --out /work/corpus --cache /work/corpus_cache --snapshots /work/.mirror \
        [--sources NAME ...]

Sources are the rows of training/sources.csv: a Debian package (``apt-get download`` into the cache,
``dpkg-deb -x``) or ``github:owner/name`` pinned to the commit in the version column and read from a
local git snapshot or clone under --snapshots (``git ls-tree`` / ``git cat-file``; nothing is cloned
here). Game archives (zip, pk3, wz) are unpacked. Each audio file is decoded -> mono 22000 Hz -> at
most ``max_clips`` 10-s clips (consecutive, or spread evenly over a longer file), clips < 0.1 s or
silent dropped, written as 16-bit FLAC; raw tags come from the path, file name, theme words and a
per-source tagger (training/sourcetags.py). General MIDI soundfonts are rendered note by note with
fluidsynth. Tags are cleaned (training/tags.py); manifest.jsonl (per clip: path, tags, source,
source file, version, licence, duration, domain), vocab.json and sources.json are written and a
per-source / per-domain table printed.
Held out from training: one soundfont, rendered into <out>/heldout_soundfont/, and each source whose
role is ``heldout``, written to <out>/heldout/<name>/ (FLAC + labels.csv file,label,group).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from training import domains, sourcetags
from training import tags as tagmod

SR = 22000
MAX_SEG_S = 10.0
MAX_SEGS = 30            # 5 min of a long recording: real audio is scarce, use it
MIN_CLIP_S = 0.1
MIN_TAIL_S = 1.0          # later segments of a long file must be at least this long
SILENCE_PEAK = 1e-3       # -60 dBFS
AUDIO_EXT = {".ogg", ".oga", ".wav", ".flac", ".mp3"}
HERE = Path(__file__).resolve().parent
DEFAULT_SOURCES = HERE / "sources.csv"
DEFAULT_HELDOUT = "csound-soundfont"  # independent of the Fluid R3 / TimGM6mb training fonts

# ----------------------------------------------------------------------------- audio


def decode(path: str) -> Tuple[np.ndarray, int]:
    """Decode to float32 mono. Falls back to librosa/audioread if libsndfile fails."""
    try:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception:
        import librosa
        y, sr = librosa.load(path, sr=None, mono=True)
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def resample(y: np.ndarray, sr: int, target: int = SR) -> np.ndarray:
    if sr == target or len(y) == 0:
        return y
    import soxr
    return soxr.resample(y, sr, target, quality="HQ").astype(np.float32)


def is_silent(y: np.ndarray) -> bool:
    return len(y) == 0 or float(np.max(np.abs(y))) < SILENCE_PEAK


def segments(y: np.ndarray, sr: int = SR, max_segs: int = MAX_SEGS) -> List[np.ndarray]:
    """At most ``max_segs`` MAX_SEG_S segments; drops short / silent ones.

    A file that holds no more than ``max_segs`` segments (a tail shorter than MIN_TAIL_S not
    counted) is cut into consecutive ones; a longer file gives ``max_segs`` full segments
    spread evenly from its start to its end, so a long recording is sampled all over rather
    than only at its beginning.
    """
    seg = int(round(MAX_SEG_S * sr))
    n_full, tail = divmod(len(y), seg)
    if n_full + (tail >= MIN_TAIL_S * sr) > max_segs:
        starts = np.linspace(0, len(y) - seg, max_segs).round().astype(int)
        return [y[a:a + seg] for a in starts if not is_silent(y[a:a + seg])]
    out = []
    for i in range(n_full + (tail > 0)):
        s = y[i * seg:(i + 1) * seg]
        min_len = MIN_CLIP_S if i == 0 else MIN_TAIL_S
        if len(s) < min_len * sr or is_silent(s):
            continue
        out.append(s)
    return out


def _process_one(job):
    """Worker: (src, out_base_abs, rel_base, max_segs) -> list of (rel_path, duration)."""
    src, out_base, rel_base, max_segs = job
    try:
        y, sr = decode(src)
    except Exception as e:  # undecodable file
        return src, [], f"decode failed: {e}"
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y)
    y = resample(y, sr, SR)
    segs = segments(y, SR, max_segs)
    res = []
    for k, s in enumerate(segs):
        suffix = "" if len(segs) == 1 and k == 0 else f"_seg{k}"
        out = out_base + suffix + ".flac"
        os.makedirs(os.path.dirname(out), exist_ok=True)
        sf.write(out, np.clip(s, -1.0, 1.0), SR, subtype="PCM_16", format="FLAC")
        res.append((rel_base + suffix + ".flac", len(s) / SR))
    return src, res, None


def _pool_map(func, jobs, workers, chunksize=1):
    if workers <= 1 or len(jobs) <= 1:
        return [func(j) for j in jobs]
    with Pool(workers) as pool:
        return list(pool.imap(func, jobs, chunksize=chunksize))


# ----------------------------------------------------------------------------- audio files

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


def _short_rel(rel: str) -> str:
    """Drop boring leading path components for output naming."""
    parts = list(Path(rel).parts)
    while parts and parts[0] in ("usr", "share", "games", "lib", "."):
        parts.pop(0)
    return str(Path(*parts)) if parts else rel


def build_clips(root: str, package: str, out_dir: str, theme: Sequence[str] = (),
                tagger: Optional[Callable[[str, str], Optional[List[str]]]] = None,
                workers: int = 2, files: Optional[Sequence[str]] = None,
                max_segs: int = MAX_SEGS, stop: Sequence[str] = (), log=print) -> List[dict]:
    """Turn a folder of audio files into clips under <out_dir>/audio/<package>/.

    Independent of apt and git: ``root`` is any directory (an extracted package, a snapshot).
    ``tagger(root, rel)`` gives the raw tag text of a file (None leaves the file out; default:
    its directories and stem). Returns one record per clip with *raw* (cleaned but not
    vocabulary-filtered) tags: {"path", "raw_tags", "source", "source_file", "duration"}.
    """
    tagger = tagger or sourcetags.TAGGERS["path"]
    files = list(files) if files is not None else find_audio(root)
    jobs, texts = [], {}
    for rel in files:
        t = tagger(root, rel)
        if t is None:
            continue
        base_rel = os.path.join("audio", safe_name(package), os.path.splitext(_short_rel(rel))[0])
        src = os.path.join(root, rel)
        jobs.append((src, os.path.join(out_dir, base_rel), base_rel, max_segs))
        texts[src] = (rel, t)
    records, failed = [], 0
    extra_stop = package_stop_words(package) | {w for s in stop for w in tagmod.tokenize(s)}
    for src, clips, err in _pool_map(_process_one, jobs, workers, chunksize=8):
        if err:
            failed += 1
            continue
        rel, t = texts[src]
        raw = tagmod.clean_words(list(t) + list(theme), extra_stop=extra_stop)
        for path, dur in clips:
            records.append({"path": path, "raw_tags": raw, "source": package,
                            "source_file": "/" + rel.lstrip("./"), "duration": round(dur, 3)})
    log(f"[{package}] {len(files)} files, {len(jobs)} tagged -> {len(records)} clips ({failed} undecodable)")
    return records


def package_stop_words(package: str) -> set:
    """Words of a source's name that say nothing about its sounds: all of a Debian package's name
    (`hedgewars data`), but only the owner of a GitHub repository, whose name often says what it
    holds (`SplendidGrandPiano`, `body_percussion`: their clips had lost `piano` and `body`)."""
    if package.startswith(GITHUB):
        owner = package[len(GITHUB):].split("/")[0]
        return {"github", *tagmod.tokenize(owner)}
    return set(tagmod.tokenize(package))


def safe_name(source: str) -> str:
    """A folder name for a source: 'github:owner/name' -> 'github_owner_name'."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", source)


def cap_source_share(records: List[dict], max_share: float, seed: int = 0) -> List[dict]:
    """Keep every source at most ``max_share`` of the clips: a seeded random choice of the clips of a
    larger one (in manifest order), the largest first, until none is over."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(records), bool)
    while True:
        counts = Counter(r["source"] for r, k in zip(records, keep) if k)
        src, c = counts.most_common(1)[0] if counts else (None, 0)
        total = sum(counts.values())
        if c <= max_share * total:
            return [r for r, k in zip(records, keep) if k]
        allowed = int(max_share * (total - c) / (1 - max_share))
        idx = [i for i, r in enumerate(records) if keep[i] and r["source"] == src]
        keep[rng.choice(idx, len(idx) - allowed, replace=False)] = False


def capped_and_final(records: List[dict], out_dir: str, max_share: float, min_count: int = 10):
    """cap_source_share + finalize until no source of the *final* corpus is over ``max_share``.

    finalize drops clips left without tags, mostly of the small sources, which pushes the large
    one's share back over the cap; so cap again among the kept clips until the share holds.
    Each pass keeps fewer clips, so this ends."""
    pool = records
    while True:
        vocab, kept = finalize(cap_source_share(pool, max_share), out_dir, min_count=min_count)
        top = Counter(r["source"] for r in kept).most_common(1)
        if not top or top[0][1] <= max_share * len(kept) or len(kept) == len(pool):
            return vocab, kept
        kept_paths = {r["path"] for r in kept}
        pool = [r for r in pool if r["path"] in kept_paths]


def finalize(records: List[dict], out_dir: str, max_frac=0.7, min_count=10, max_tags=1000):
    """Apply the vocabulary filters; write manifest.jsonl and vocab.json. Returns (vocab, kept).

    A tag must occur in ``min_count`` different source files (not clips: see tags.build_vocab).

    Every key of a record but ``raw_tags`` is kept in the manifest (path, source, source_file,
    duration, and version, licence, domain where the builder added them)."""
    vocab, idx, tags = tagmod.filter_tags([r["raw_tags"] for r in records], max_frac, min_count, max_tags,
                                          groups=[(r["source"], r["source_file"]) for r in records])
    kept = []
    for i, t in zip(idx, tags):
        r = {k: v for k, v in records[i].items() if k != "raw_tags"}
        r["tags"] = t
        r["domain"] = domains.domain(t)
        kept.append(r)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "manifest.jsonl"), "w") as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, indent=0)
    return vocab, kept


# ----------------------------------------------------------------------------- soundfonts

GM_PROGRAMS = """Acoustic Grand Piano|Bright Acoustic Piano|Electric Grand Piano|Honky-tonk Piano|Electric Piano 1|Electric Piano 2|Harpsichord|Clavinet|Celesta|Glockenspiel|Music Box|Vibraphone|Marimba|Xylophone|Tubular Bells|Dulcimer|Drawbar Organ|Percussive Organ|Rock Organ|Church Organ|Reed Organ|Accordion|Harmonica|Tango Accordion|Acoustic Guitar (nylon)|Acoustic Guitar (steel)|Electric Guitar (jazz)|Electric Guitar (clean)|Electric Guitar (muted)|Overdriven Guitar|Distortion Guitar|Guitar Harmonics|Acoustic Bass|Electric Bass (finger)|Electric Bass (pick)|Fretless Bass|Slap Bass 1|Slap Bass 2|Synth Bass 1|Synth Bass 2|Violin|Viola|Cello|Contrabass|Tremolo Strings|Pizzicato Strings|Orchestral Harp|Timpani|String Ensemble 1|String Ensemble 2|Synth Strings 1|Synth Strings 2|Choir Aahs|Voice Oohs|Synth Voice|Orchestra Hit|Trumpet|Trombone|Tuba|Muted Trumpet|French Horn|Brass Section|Synth Brass 1|Synth Brass 2|Soprano Sax|Alto Sax|Tenor Sax|Baritone Sax|Oboe|English Horn|Bassoon|Clarinet|Piccolo|Flute|Recorder|Pan Flute|Blown Bottle|Shakuhachi|Whistle|Ocarina|Lead 1 (square)|Lead 2 (sawtooth)|Lead 3 (calliope)|Lead 4 (chiff)|Lead 5 (charang)|Lead 6 (voice)|Lead 7 (fifths)|Lead 8 (bass + lead)|Pad 1 (new age)|Pad 2 (warm)|Pad 3 (polysynth)|Pad 4 (choir)|Pad 5 (bowed)|Pad 6 (metallic)|Pad 7 (halo)|Pad 8 (sweep)|FX 1 (rain)|FX 2 (soundtrack)|FX 3 (crystal)|FX 4 (atmosphere)|FX 5 (brightness)|FX 6 (goblins)|FX 7 (echoes)|FX 8 (sci-fi)|Sitar|Banjo|Shamisen|Koto|Kalimba|Bag pipe|Fiddle|Shanai|Tinkle Bell|Agogo|Steel Drums|Woodblock|Taiko Drum|Melodic Tom|Synth Drum|Reverse Cymbal|Guitar Fret Noise|Breath Noise|Seashore|Bird Tweet|Telephone Ring|Helicopter|Applause|Gunshot""".split("|")
GM_FAMILIES = ["piano", "chromatic percussion", "organ", "guitar", "bass", "strings",
               "ensemble", "brass", "reed", "pipe", "synth lead", "synth pad",
               "synth effects", "ethnic", "percussive", "sound effects"]
assert len(GM_PROGRAMS) == 128


def gm_family(program: int) -> str:
    return GM_FAMILIES[program // 8]


register = sourcetags.register  # one definition for rendered and recorded notes


def note_tags(program: int, pitch: int, velocity: int) -> List[str]:
    return [GM_PROGRAMS[program], gm_family(program), register(pitch),
            "soft" if velocity < 80 else "loud", "note", "instrument"]


NOTE_S, SLOT_S = 2.0, 3.0


def write_midi(path: str, notes: Sequence[Tuple[int, int, int]]):
    """One (program, pitch, velocity) note per 3-s slot: program change + note on at slot
    start, note off after 2 s, all-sound-off / reset just before the slot ends."""
    import mido
    tps = 960  # 480 ticks per beat at 120 bpm -> 960 ticks per second
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    gap = 0
    for (prog, p, v) in notes:
        tr.append(mido.Message("program_change", program=prog, channel=0, time=gap))
        tr.append(mido.Message("note_on", note=p, velocity=v, channel=0, time=0))
        tr.append(mido.Message("note_off", note=p, velocity=0, channel=0, time=int(NOTE_S * tps)))
        tr.append(mido.Message("control_change", control=120, value=0, channel=0,
                               time=int((SLOT_S - NOTE_S) * tps) - 2))
        tr.append(mido.Message("control_change", control=121, value=0, channel=0, time=1))
        gap = 1
    tr.append(mido.MetaMessage("end_of_track", time=0))
    mid.save(path)


def _render_chunk(job):
    """Render a list of notes with ONE fluidsynth call (sf3 loading is slow), cut into slots."""
    sf2, notes, out_dir, rel_dir = job
    with tempfile.TemporaryDirectory() as td:
        mpath, wpath = os.path.join(td, "n.mid"), os.path.join(td, "n.wav")
        write_midi(mpath, notes)
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5",
               "-r", str(SR), "-F", wpath, sf2, mpath]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        y, sr = decode(wpath)
    y = resample(y, sr, SR)
    slot = int(SLOT_S * SR)
    res = []
    for k, (prog, p, v) in enumerate(notes):
        s = y[k * slot:(k + 1) * slot]
        if len(s) < MIN_CLIP_S * SR or is_silent(s):
            continue
        rel = os.path.join(rel_dir, f"prog{prog:03d}", f"p{p:03d}_v{v:03d}.flac")
        out = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        sf.write(out, np.clip(s, -1, 1), SR, subtype="PCM_16", format="FLAC")
        res.append((os.path.normpath(rel), prog, p, v, len(s) / SR))
    return res


def render_soundfont(sf2: str, out_dir: str, rel_dir: str, pitches: Sequence[int],
                     velocities: Sequence[int], workers: int = 2,
                     programs: Iterable[int] = range(128), programs_per_call: int = 32):
    """Render every (program, pitch, velocity) as a 3-s clip (2-s note + release)."""
    programs = list(programs)
    jobs = []
    for i in range(0, len(programs), programs_per_call):
        notes = [(prog, p, v) for prog in programs[i:i + programs_per_call]
                 for p in pitches for v in velocities]
        jobs.append((sf2, notes, out_dir, rel_dir))
    out = []
    for res in _pool_map(_render_chunk, jobs, workers):
        out.extend(res)
    return out


# ----------------------------------------------------------------------------- apt

def load_sources(path) -> List[dict]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["package"] and not r["package"].startswith("#")]


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


ARCHIVE_EXT = (".zip", ".pk3", ".wz")  # game archives are zip files


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


# ----------------------------------------------------------------------------- GitHub snapshots

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


# ----------------------------------------------------------------------------- synthetic speech

ESPEAK_VOICES = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029"]


def espeak_variants() -> List[str]:
    """espeak-ng's voice variants (male1, female_whisper, klatt...), by file name."""
    lines = subprocess.run(["espeak-ng", "--voices=variant"], check=True, capture_output=True,
                           text=True).stdout.splitlines()[1:]
    return sorted({l.split()[4].split("/")[-1] for l in lines if len(l.split()) >= 5})


def synthesize_words(dest: str, words: Sequence[str], per_word: int, seed: int = 0) -> List[str]:
    """``per_word`` renditions of each English word by espeak-ng, each with a seeded random English
    voice, variant, speed and pitch, as <dest>/<voice>+<variant>/<word>_s<speed>_p<pitch>.wav.
    Returns the relative paths (the word is the file name's first part: the tag)."""
    rng = np.random.default_rng(seed)
    variants = espeak_variants()
    rels = []
    for word in words:
        for _ in range(per_word):
            voice = f"{rng.choice(ESPEAK_VOICES)}+{rng.choice(variants)}"
            speed, pitch = int(rng.integers(120, 221)), int(rng.integers(20, 81))
            rel = os.path.join(voice, f"{word.replace(' ', '-')}_s{speed}_p{pitch}.wav")
            out = os.path.join(dest, rel)
            if not os.path.exists(out):
                os.makedirs(os.path.dirname(out), exist_ok=True)
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", out, word],
                               check=True, capture_output=True)
            rels.append(rel)
    return rels


# ----------------------------------------------------------------------------- held-out sets

def write_heldout(root: str, name: str, out_dir: str, labeller, files: Sequence[str], workers: int = 2,
                  log=print) -> int:
    """One clip (first 10 s) per file that ``labeller(rel) -> (label, group) | None`` labels, into
    <out_dir>/heldout/<name>/ as FLAC + labels.csv (file,label,group), the ../shared/data layout."""
    hd = os.path.join(out_dir, "heldout", name)
    shutil.rmtree(hd, ignore_errors=True)
    jobs, labels = [], {}
    for rel in files:
        lab = labeller(rel)
        if lab is None:
            continue
        base = os.path.splitext(rel)[0].replace(os.sep, "__")
        src = os.path.join(root, rel)
        jobs.append((src, os.path.join(hd, base), base, 1))
        labels[src] = lab
    rows = []
    for src, clips, err in _pool_map(_process_one, jobs, workers, chunksize=8):
        for path, _ in clips:
            rows.append((path, *labels[src]))
    os.makedirs(hd, exist_ok=True)
    with open(os.path.join(hd, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "group"])
        w.writerows(sorted(rows))
    log(f"[{name}] held out: {len(rows)} clips, {len({r[1] for r in rows})} labels, "
        f"{len({r[2] for r in rows})} groups -> {hd}")
    return len(rows)


# ----------------------------------------------------------------------------- main

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
    deb = download(name, cache)
    root = extract(deb, cache, name)
    return root, {"version": deb_version(deb), "licence": row.get("licence") or licences(root, name),
                  "deb": os.path.basename(deb)}


def source_files(root: str, row: dict) -> List[str]:
    """The audio files of a source, restricted to the ``paths`` regular expression if given."""
    files = find_audio(root)
    return [f for f in files if re.search(row["paths"], f)] if row.get("paths") else files


def table(kept: List[dict], heldout: Dict[str, int]) -> str:
    """Markdown tables per source and per domain: clips, share, hours, real-world-tagged clips."""
    n = len(kept) or 1
    lines = ["| source | clips | % | hours | real-world-tagged | main domain |", "|---|---|---|---|---|---|"]
    by_src: Dict[str, List[dict]] = {}
    for r in kept:
        by_src.setdefault(r["source"], []).append(r)
    for src, rs in sorted(by_src.items(), key=lambda kv: -len(kv[1])):
        dom = Counter(r["domain"] for r in rs).most_common(1)[0][0]
        rw = sum(domains.is_real_world(r["tags"]) for r in rs)
        lines.append(f"| {src} | {len(rs)} | {100 * len(rs) / n:.1f} | {sum(r['duration'] for r in rs) / 3600:.2f} "
                     f"| {rw} | {dom} |")
    for name, c in heldout.items():
        lines.append(f"| {name} (held out) | {c} | - | - | - | - |")
    lines += ["", "| domain | clips | % | hours | sources |", "|---|---|---|---|---|"]
    for d in domains.DOMAINS:
        rs = [r for r in kept if r["domain"] == d]
        srcs = Counter(r["source"] for r in rs)
        lines.append(f"| {d} | {len(rs)} | {100 * len(rs) / n:.1f} | {sum(r['duration'] for r in rs) / 3600:.2f} "
                     f"| {len(srcs)} |")
    rw = sum(domains.is_real_world(r["tags"]) for r in kept)
    notes = sum(r["domain"] == domains.NOTES and domains.is_real_world(r["tags"]) for r in kept)
    lines += ["", f"total: {len(kept)} clips, {sum(r['duration'] for r in kept) / 3600:.2f} h; "
              f"real-world-tagged {rw} (of them rendered notes {notes})"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="/work/corpus_cache", help="downloaded packages, exported snapshots")
    ap.add_argument("--snapshots", help="folder of git snapshots or clones (owner+name/repo, owner/name...)")
    ap.add_argument("--sources-csv", default=str(DEFAULT_SOURCES), help="CSV of sources")
    ap.add_argument("--sources", "--only", nargs="*", dest="sources",
                    help="build only these sources (package or github:owner/name)")
    ap.add_argument("--update", action="store_true",
                    help="with --sources: rebuild those sources, keep the other clips of the last build in --out")
    ap.add_argument("--heldout-soundfont", default=DEFAULT_HELDOUT)
    ap.add_argument("--max-source-share", type=float, default=0.25,
                    help="subsample any source above this share of the clips (default 0.25)")
    ap.add_argument("--espeak-share", type=float, default=0.15,
                    help="synthetic speech (an espeak source) makes at most this share of the clips")
    ap.add_argument("--min-tag-count", type=int, default=10, help="drop tags on fewer clips (paper: 10)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pitches", default="36:97:6", help="start:stop:step MIDI pitches (train soundfonts)")
    ap.add_argument("--velocities", default="50,110")
    ap.add_argument("--heldout-pitches", default="48,60,72")
    ap.add_argument("--heldout-velocities", default="60,110")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)
    sources = load_sources(args.sources_csv)
    if args.sources:
        unknown = set(args.sources) - {s["package"] for s in sources}
        if unknown:
            raise SystemExit(f"not in {args.sources_csv}: {', '.join(sorted(unknown))}")
        sources = [s for s in sources if s["package"] in args.sources]
    a, b, c = (int(x) for x in args.pitches.split(":"))
    pitches = list(range(a, b, c))
    vels = [int(x) for x in args.velocities.split(",")]

    records, used, failed, heldout = [], {}, {}, {}
    for s in sources:
        pkg, kind = s["package"], s["kind"]
        try:
            root, info = obtain(s, args.cache, args.snapshots)
        except Exception as e:
            print(f"[{pkg}] FAILED: {e}", flush=True)
            failed[pkg] = str(e)
            continue
        info["kind"] = kind
        t1 = time.time()
        if kind == "soundfont":
            fonts = sorted(glob.glob(os.path.join(root, "usr/share/sounds/sf[23]/*.sf[23]")))
            if not fonts:
                failed[pkg] = "no soundfont file"
                continue
            font = fonts[0]
            info["soundfont"] = os.path.relpath(font, root)
            if pkg == args.heldout_soundfont:
                hd = os.path.join(out, "heldout_soundfont")
                shutil.rmtree(hd, ignore_errors=True)
                res = render_soundfont(font, hd, ".", [int(x) for x in args.heldout_pitches.split(",")],
                                       [int(x) for x in args.heldout_velocities.split(",")], args.workers)
                with open(os.path.join(hd, "labels.csv"), "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["file", "label", "group"])
                    for rel, prog, p, v, d in res:
                        w.writerow([rel, gm_family(prog), prog])
                info["role"] = "heldout"
                info["clips"] = heldout["heldout_soundfont"] = len(res)
                print(f"[{pkg}] held-out soundfont: {len(res)} notes ({time.time()-t1:.0f}s)", flush=True)
            else:
                res = render_soundfont(font, out, os.path.join("audio", pkg), pitches, vels, args.workers)
                extra_stop = set(tagmod.tokenize(pkg))
                for rel, prog, p, v, d in res:
                    records.append({"path": rel, "raw_tags": tagmod.clean_words(note_tags(prog, p, v), extra_stop),
                                    "source": pkg, "source_file": f"{info['soundfont']}#program={prog},pitch={p},velocity={v}",
                                    "duration": round(d, 3), "version": info["version"], "licence": info["licence"]})
                info["role"] = "train"
                info["clips_raw"] = len(res)
                print(f"[{pkg}] rendered {len(res)} notes ({time.time()-t1:.0f}s)", flush=True)
        elif kind == "espeak":  # word-labelled synthetic speech, at most --espeak-share of the clips
            real = sum(r["source"] != pkg for r in records)
            per_word = max(0, int(args.espeak_share * real / (1 - args.espeak_share)) // len(domains.SPOKEN_WORDS))
            rels = synthesize_words(root, domains.SPOKEN_WORDS, per_word)
            recs = build_clips(root, pkg, out, s.get("theme", "").split(), sourcetags.TAGGERS["espeak"],
                               args.workers, files=rels, log=lambda m: print(m, flush=True))
            for r in recs:
                r["version"], r["licence"] = info["version"], info["licence"]
            records.extend(recs)
            info["role"], info["clips_raw"], info["per_word"] = "train", len(recs), per_word
        elif s.get("role") == "heldout":
            name = s["tagger"]
            info["role"] = "heldout"
            info["clips"] = heldout[name] = write_heldout(root, name, out, sourcetags.LABELLERS[name],
                                                          source_files(root, s), args.workers,
                                                          log=lambda m: print(m, flush=True))
        else:
            recs = build_clips(root, pkg, out, s.get("theme", "").split(),
                               sourcetags.TAGGERS[s.get("tagger") or "path"], args.workers,
                               files=source_files(root, s), max_segs=int(s.get("max_clips") or MAX_SEGS),
                               stop=s.get("stop", "").split(), log=lambda m: print(m, flush=True))
            for r in recs:
                r["version"], r["licence"] = info["version"], info["licence"]
            records.extend(recs)
            info["role"] = "train"
            info["clips_raw"] = len(recs)
            print(f"   ({time.time()-t1:.0f}s)", flush=True)
        used[pkg] = info

    previous = os.path.join(out, "records.jsonl")
    if args.update and os.path.exists(previous):  # keep the clips of the sources not rebuilt now
        built = {s["package"] for s in sources}
        with open(previous) as f:
            records = [r for r in map(json.loads, f) if r["source"] not in built] + records
        old_info = json.load(open(os.path.join(out, "sources.json")))
        used = {**{k: v for k, v in old_info["packages"].items() if k not in built}, **used}
        heldout = {**old_info.get("heldout", {}), **heldout}
    with open(previous, "w") as f:  # raw tags of every clip, for --update
        for r in records:
            f.write(json.dumps(r) + "\n")
    vocab, kept = capped_and_final(records, out, args.max_source_share, args.min_tag_count)
    print(f"source share cap {args.max_source_share}: {len(records) - len(kept)} clips left out "
          "(capped or untagged)", flush=True)
    per_pkg = Counter(r["source"] for r in kept)
    for pkg in used:
        if used[pkg].get("role") == "train":
            used[pkg]["clips"] = per_pkg.get(pkg, 0)
    report = table(kept, heldout)
    real_tags = [t for t in vocab if t in domains.REAL_WORLD]
    with open(os.path.join(out, "sources.json"), "w") as f:
        json.dump({"packages": used, "failed": failed, "heldout": heldout,
                   "heldout_soundfont": args.heldout_soundfont, "sample_rate": SR,
                   "real_world_tags": real_tags, "build_seconds": round(time.time() - t0, 1)}, f, indent=1)
    Path(out, "table.md").write_text(report + "\n")
    hours = sum(r["duration"] for r in kept) / 3600
    print(report)
    print(f"done: {len(kept)} clips ({len(records) - len(kept)} dropped untagged), "
          f"{hours:.2f} h, vocab {len(vocab)} ({len(real_tags)} real-world), {time.time()-t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
