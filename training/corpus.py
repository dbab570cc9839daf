"""Build the COALA-style training corpus (audio clips + tags) from Debian packages.

    python -m training.corpus --out /work/corpus --cache /work/corpus_cache

Steps: ``apt-get download`` each source package (kept in the cache), ``dpkg-deb -x``,
find audio files, decode -> mono 22000 Hz -> at most 3 consecutive 10-s clips,
drop clips < 0.1 s or silent, write 16-bit FLAC, derive raw tags from the path,
file name, package theme words (and tuxpaint-stamps description texts), render
General MIDI soundfonts note by note with fluidsynth, then clean the tags
(training/tags.py) and write manifest.jsonl, vocab.json, sources.json.
One soundfont is held out and rendered into <out>/heldout_soundfont/ (labels.csv).
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

from training import tags as tagmod

SR = 22000
MAX_SEG_S = 10.0
MAX_SEGS = 3
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


def segments(y: np.ndarray, sr: int = SR) -> List[np.ndarray]:
    """At most MAX_SEGS consecutive MAX_SEG_S segments; drops short / silent ones."""
    seg = int(round(MAX_SEG_S * sr))
    out = []
    for i in range(MAX_SEGS):
        s = y[i * seg:(i + 1) * seg]
        if len(s) == 0:
            break
        min_len = MIN_CLIP_S if i == 0 else MIN_TAIL_S
        if len(s) < min_len * sr or is_silent(s):
            continue
        out.append(s)
    return out


def _process_one(job):
    """Worker: (src, out_base_abs, rel_base) -> list of (rel_path, duration)."""
    src, out_base, rel_base = job
    try:
        y, sr = decode(src)
    except Exception as e:  # undecodable file
        return src, [], f"decode failed: {e}"
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y)
    y = resample(y, sr, SR)
    segs = segments(y, SR)
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


# ----------------------------------------------------------------------------- tags from paths

def path_tag_text(rel: str) -> List[str]:
    """Raw tag strings from a path inside a package: directory names and file stem."""
    p = Path(rel)
    return [*p.parent.parts, p.stem]


# A spoken description (<stamp>_desc[_ll].ogg) is tagged as speech only. Its
# language is not a tag: each language is read by a single voice, so a language
# tag names a speaker, and the contrastive loss then rewards telling speakers
# apart rather than hearing what is said (measured on the rebuilt corpus: E-C
# +3.5 points on fsdd spoken digits, AE-C +2.9 on held-out notes; README).
SPOKEN_DESCRIPTION_TAGS = ["speech", "voice", "spoken", "description"]


def tuxpaint_tags(root: str, rel: str) -> List[str]:
    """tuxpaint-stamps: stamp sounds get path + English description (<stamp>.txt);
    spoken descriptions (<stamp>_desc[_ll].ogg) get SPOKEN_DESCRIPTION_TAGS."""
    p = Path(rel)
    if re.search(r"_desc(_[a-z]{2,3})?$", p.stem):
        return list(SPOKEN_DESCRIPTION_TAGS)
    texts = path_tag_text(rel)
    txt = Path(root) / p.parent / (p.stem + ".txt")
    if txt.exists():
        try:
            first = txt.read_text(encoding="utf-8", errors="ignore").splitlines()
            eng = [l for l in first[:3] if "=" not in l]
            texts += eng[:1]
        except OSError:
            pass
    return texts


TAGGERS: Dict[str, Callable[[str, str], List[str]]] = {
    "tuxpaint-stamps-default": tuxpaint_tags,
}


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
                tagger: Optional[Callable[[str, str], List[str]]] = None,
                workers: int = 2, files: Optional[Sequence[str]] = None,
                log=print) -> List[dict]:
    """Turn a folder of audio files into clips under <out_dir>/audio/<package>/.

    Independent of apt: ``root`` is any directory (e.g. an extracted package).
    Returns one record per clip with *raw* (cleaned but not vocabulary-filtered) tags:
    {"path", "raw_tags", "package", "source_file", "duration"}.
    """
    files = list(files) if files is not None else find_audio(root)
    jobs, meta = [], {}
    for rel in files:
        base_rel = os.path.join("audio", package, os.path.splitext(_short_rel(rel))[0])
        src = os.path.join(root, rel)
        jobs.append((src, os.path.join(out_dir, base_rel), base_rel))
        meta[src] = rel
    records, failed = [], 0
    extra_stop = set(tagmod.tokenize(package))
    for src, clips, err in _pool_map(_process_one, jobs, workers, chunksize=8):
        if err:
            failed += 1
            continue
        if not clips:
            continue
        rel = meta[src]
        texts = (tagger(root, rel) if tagger else path_tag_text(rel)) + list(theme)
        raw = tagmod.clean_words(texts, extra_stop=extra_stop)
        for path, dur in clips:
            records.append({"path": path, "raw_tags": raw, "package": package,
                            "source_file": "/" + rel.lstrip("./"), "duration": round(dur, 3)})
    log(f"[{package}] {len(files)} files -> {len(records)} clips ({failed} undecodable)")
    return records


def finalize(records: List[dict], out_dir: str, max_frac=0.7, min_count=10, max_tags=1000):
    """Apply the vocabulary filters; write manifest.jsonl and vocab.json. Returns (vocab, kept)."""
    vocab, idx, tags = tagmod.filter_tags([r["raw_tags"] for r in records],
                                          max_frac, min_count, max_tags)
    kept = []
    for i, t in zip(idx, tags):
        r = records[i]
        kept.append({"path": r["path"], "tags": t, "package": r["package"],
                     "source_file": r["source_file"], "duration": r["duration"]})
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


def register(pitch: int) -> str:
    return "low" if pitch < 48 else ("mid" if pitch < 72 else "high")


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
        subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
        Path(marker).write_text(os.path.basename(deb))
    unpack_zips(dest)
    return dest


def unpack_zips(root: str):
    """Extract audio members of .zip archives (e.g. 0ad-data's mod zips) next to them."""
    import zipfile
    for dp, _, fns in os.walk(root):
        for fn in fns:
            if not fn.lower().endswith(".zip") or dp.endswith("_zip"):
                continue
            zp = os.path.join(dp, fn)
            dest = os.path.join(dp, fn[:-4] + "_zip")
            marker = os.path.join(dest, ".unzipped")
            if os.path.exists(marker):
                continue
            with zipfile.ZipFile(zp) as z:
                for m in z.namelist():
                    if Path(m).suffix.lower() in AUDIO_EXT and ".." not in m:
                        z.extract(m, dest)
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


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="/work/corpus_cache")
    ap.add_argument("--sources", default=str(DEFAULT_SOURCES), help="CSV of source packages")
    ap.add_argument("--only", nargs="*", help="restrict to these packages")
    ap.add_argument("--heldout-soundfont", default=DEFAULT_HELDOUT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pitches", default="36:97:6", help="start:stop:step MIDI pitches (train soundfonts)")
    ap.add_argument("--velocities", default="50,110")
    ap.add_argument("--heldout-pitches", default="48,60,72")
    ap.add_argument("--heldout-velocities", default="60,110")
    args = ap.parse_args(argv)

    t0 = time.time()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)
    sources = load_sources(args.sources)
    if args.only:
        sources = [s for s in sources if s["package"] in args.only]
    a, b, c = (int(x) for x in args.pitches.split(":"))
    pitches = list(range(a, b, c))
    vels = [int(x) for x in args.velocities.split(",")]

    records, used, failed = [], {}, {}
    for s in sources:
        pkg, kind = s["package"], s["kind"]
        theme = s.get("theme", "").split()
        try:
            deb = download(pkg, args.cache)
            root = extract(deb, args.cache, pkg)
        except Exception as e:
            print(f"[{pkg}] FAILED: {e}", flush=True)
            failed[pkg] = str(e)
            continue
        info = {"version": deb_version(deb), "licence": licences(root, pkg), "kind": kind,
                "deb": os.path.basename(deb)}
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
                info["clips"] = len(res)
                print(f"[{pkg}] held-out soundfont: {len(res)} notes ({time.time()-t1:.0f}s)", flush=True)
            else:
                res = render_soundfont(font, out, os.path.join("audio", pkg), pitches, vels, args.workers)
                extra_stop = set(tagmod.tokenize(pkg))
                for rel, prog, p, v, d in res:
                    records.append({"path": rel, "raw_tags": tagmod.clean_words(note_tags(prog, p, v), extra_stop),
                                    "package": pkg, "source_file": f"{info['soundfont']}#program={prog},pitch={p},velocity={v}",
                                    "duration": round(d, 3)})
                info["role"] = "train"
                info["clips_raw"] = len(res)
                print(f"[{pkg}] rendered {len(res)} notes ({time.time()-t1:.0f}s)", flush=True)
        else:
            recs = build_clips(root, pkg, out, theme, TAGGERS.get(pkg), args.workers,
                               log=lambda m: print(m, flush=True))
            records.extend(recs)
            info["role"] = "train"
            info["clips_raw"] = len(recs)
            print(f"   ({time.time()-t1:.0f}s)", flush=True)
        used[pkg] = info

    vocab, kept = finalize(records, out)
    per_pkg = Counter(r["package"] for r in kept)
    for pkg in used:
        if used[pkg].get("role") == "train":
            used[pkg]["clips"] = per_pkg.get(pkg, 0)
    with open(os.path.join(out, "sources.json"), "w") as f:
        json.dump({"packages": used, "failed": failed, "heldout_soundfont": args.heldout_soundfont,
                   "sample_rate": SR, "build_seconds": round(time.time() - t0, 1)}, f, indent=1)
    hours = sum(r["duration"] for r in kept) / 3600
    print(f"done: {len(kept)} clips ({len(records) - len(kept)} dropped untagged), "
          f"{hours:.2f} h, vocab {len(vocab)}, {time.time()-t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
