"""Build the COALA-style training corpus (audio clips + tags) from Debian packages and GitHub snapshots.

    python -m training.corpus --out /work/corpus --cache /work/corpus_cache --snapshots /work/.mirror \
        [--sources NAME ...]

Sources are the rows of training/sources.csv: a Debian package (``apt-get download`` into the cache,
``dpkg-deb -x``) or ``github:owner/name`` pinned to the commit in the version column and read from a
local git snapshot or clone under --snapshots (``git ls-tree`` / ``git cat-file``; nothing is cloned
here). Game archives (zip, pk3, wz) are unpacked. Each audio file is decoded -> mono 22000 Hz -> at
most ``max_clips`` 10-s clips (consecutive, or spread evenly over a longer file), clips < 0.1 s or
silent dropped, written as 16-bit FLAC; raw tags come from the path, file name, theme words and a
per-source tagger (sourcetags.py). General MIDI soundfonts are rendered note by note with
fluidsynth. Tags are cleaned (tags.py); manifest.jsonl (per clip: path, tags, source,
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
import shutil
import time
from collections import Counter
from pathlib import Path

from training.corpus import domains, sourcetags
from training.corpus import tags as tagmod
from training.corpus.clips import MAX_SEGS, SR, build_clips, write_heldout
from training.corpus.manifest import capped_and_final, table
from training.corpus.ontology import LICENCE, ONTOLOGY_SOURCE, WORDNET_LICENCE, load_ontology
from training.corpus.soundfonts import gm_family, note_tags, render_soundfont
from training.corpus.sources import DEFAULT_SOURCES, load_sources, obtain, source_files
from training.corpus.speech import synthesize_words

DEFAULT_HELDOUT = "csound-soundfont"  # independent of the Fluid R3 / TimGM6mb training fonts


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
    ap.add_argument("--ontology", nargs="?", const=ONTOLOGY_SOURCE, metavar="JSON",
                    help="add the AudioSet ontology's categories and their ancestors to each clip's tags (ontology.py); "
                         f"default: ontology.json of {ONTOLOGY_SOURCE} under --snapshots")
    ap.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 dict folder (Debian wordnet-base)")
    ap.add_argument("--retag", action="store_true",
                    help="read no source: rebuild the vocabulary and manifest from --out's records.jsonl")
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

    previous = os.path.join(out, "records.jsonl")
    if args.retag:
        with open(previous) as f:
            records = [json.loads(line) for line in f]
        old_info = json.load(open(os.path.join(out, "sources.json")))
        used, failed, heldout = old_info["packages"], old_info["failed"], old_info.get("heldout", {})
    else:
        records, used, failed, heldout = build_sources(sources, args, out, pitches, vels)
    if args.update and not args.retag and os.path.exists(previous):  # keep the clips of the sources not rebuilt now
        built = {s["package"] for s in sources}
        with open(previous) as f:
            records = [r for r in map(json.loads, f) if r["source"] not in built] + records
        old_info = json.load(open(os.path.join(out, "sources.json")))
        used = {**{k: v for k, v in old_info["packages"].items() if k not in built}, **used}
        heldout = {**old_info.get("heldout", {}), **heldout}
    with open(previous, "w") as f:  # raw tags of every clip, for --update
        for r in records:
            f.write(json.dumps(r) + "\n")
    tagged, ontology_info = records, None
    if args.ontology:  # records.jsonl keeps the file-name words; the ontology's tags are added here
        onto = load_ontology(args.ontology, args.snapshots, args.wordnet)
        tagged = [{**r, "raw_tags": onto.expand(r["raw_tags"])} for r in records]
        ontology_info = {"source": args.ontology, "licence": LICENCE, "wordnet_licence": WORDNET_LICENCE}
    vocab, kept = capped_and_final(tagged, out, args.max_source_share, args.min_tag_count)
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
                   "real_world_tags": real_tags, "ontology": ontology_info, "build_seconds": round(time.time() - t0, 1)}, f, indent=1)
    Path(out, "table.md").write_text(report + "\n")
    hours = sum(r["duration"] for r in kept) / 3600
    print(report)
    print(f"done: {len(kept)} clips ({len(records) - len(kept)} dropped untagged), "
          f"{hours:.2f} h, vocab {len(vocab)} ({len(real_tags)} real-world), {time.time()-t0:.0f}s", flush=True)


def build_sources(sources, args, out, pitches, vels):
    """Read every source: (records with raw tags, per-source info, failures, held-out set sizes)."""
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
                                                          log=lambda m: print(m, flush=True),
                                                          max_segs=int(s.get("max_clips") or 1))
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
    return records, used, failed, heldout


if __name__ == "__main__":
    main()
