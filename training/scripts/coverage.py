"""Coverage audit: clips per AudioSet ontology category in a corpus, for the everyday branches.

    python -m training.scripts.coverage --corpus /work/corpus-v5 --snapshots /work/.mirror

Counts the clips of the corpus's manifest whose file-name words reach a category (ontology.py), or a
category below it, before the 1000-tag cap, and prints a markdown table per everyday branch (household,
water, animals, tools, vehicles, human sounds) with the categories that have fewer than --few clips
marked: where the corpus is thin, new sources or synthesis should look first.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from training.corpus.ontology import ONTOLOGY_SOURCE, load_ontology

BRANCHES = ("Domestic sounds, home sounds", "Liquid", "Water", "Animal", "Tools", "Vehicle", "Human sounds")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="a corpus folder (manifest.jsonl and records.jsonl)")
    ap.add_argument("--ontology", default=ONTOLOGY_SOURCE)
    ap.add_argument("--snapshots")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--few", type=int, default=10)
    args = ap.parse_args(argv)
    onto = load_ontology(args.ontology, args.snapshots, args.wordnet)
    corpus = Path(args.corpus)
    kept = {json.loads(line)["path"] for line in (corpus / "manifest.jsonl").open()}
    clips = Counter()
    for line in (corpus / "records.jsonl").open():
        r = json.loads(line)
        if r["path"] in kept:
            words = r["raw_tags"]
            reached = {c for w in words for c in onto.categories_of(w)}
            reached |= {c for a, b in zip(words, words[1:]) for c in onto.categories_of(f"{a} {b}")}
            clips.update({a for c in reached for a in onto.ancestors(c)})
    children = {cid: [] for cid in onto.name}
    for cid, parents in onto.parents.items():
        for p in parents:
            children[p].append(cid)
    by_name = {n: c for c, n in onto.name.items()}
    print(f"{len(kept)} clips; {sum(1 for c in onto.name if clips[c])} of {len(onto.name)} categories reached\n")
    for branch in BRANCHES:
        root = by_name[branch]
        print(f"### {branch}: {clips[root]} clips\n\n| category | clips |\n|---|---|")
        for cid in sorted(children[root], key=lambda c: -clips[c]):
            below = ", ".join(f"{onto.name[g]} {clips[g]}" for g in sorted(children[cid], key=lambda g: -clips[g]))
            mark = " **few**" if clips[cid] < args.few else ""
            print(f"| {onto.name[cid]}{mark} | {clips[cid]}{' (' + below + ')' if below else ''} |")
        print()


if __name__ == "__main__":
    main()
