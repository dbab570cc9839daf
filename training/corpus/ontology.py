"""The AudioSet ontology as the tags' hierarchy: a tag word onto sound categories, a category onto its ancestors.

The ontology (github:audioset/ontology, ontology.json: 632 sound categories in a hierarchy; Google,
CC BY-SA 4.0; the taxonomy only, no AudioSet audio) gives the broad tags file names lack: a clip
tagged `bark` also gets `dog`, `domestic animals, pets` and `animal`, so clips of a dog and of a cow
share `animal` and the contrastive loss can learn that they share something.

A word reaches categories by (1) a category's name or one of its comma-separated synonyms ("Canidae,
dogs, wolves" -> canidae, dog, wolf), singular, spaces and hyphens ignored; else (2) WordNet (Princeton
WordNet 3.0, read through nltk from Debian's wordnet-base), for animals and man-made things only: the
lemmas of the word's noun sense, then its hypernyms breadth first, nearest first (`puppy` -> dog,
`robin` -> ... -> bird, `bison` -> ... -> animal, `celesta` -> musical instrument).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections import deque
from functools import lru_cache
from pathlib import Path

from training.corpus import tags as tagmod

ONTOLOGY_SOURCE = "github:audioset/ontology@d417d32bf59c711abb5910fd2f76a0eb44697991"
LICENCE = "AudioSet ontology: Google, CC BY-SA 4.0 (github:audioset/ontology README)"
WORDNET_LICENCE = "WordNet 3.0: Princeton University, WordNet licence (BSD-like; /usr/share/doc/wordnet-base/copyright)"
MAX_HYPERNYM_DEPTH = 12
# WordNet is followed only from animals and man-made things, and only onto categories of the same kind:
# measured on the corpus's 700 commonest words, its other routes were mostly wrong (a country name ->
# "Country" the music genre, `red` -> the Red River -> "Stream", `soldier` -> soldier ant -> "Insect").
WORDNET_ROUTES = {"noun.animal": ("Animal",), "noun.artifact": ("Sounds of things", "Music")}
# an animal sense counts when no sense before it is common (WordNet's tagged-text count over 1): `whale`'s
# first sense, "a very large person", counts 1, its animal second; `soldier`'s person counts 166, so
# not the soldier ant. A man-made thing: the first sense only (`bullet`'s second is the bullet train).
MAX_ANIMAL_SENSES = 3
RARE_SENSE_COUNT = 1
# what the corpus means by these words, where the ontology's name or WordNet's sense says otherwise
OVERRIDES = {"instrument": "Musical instrument", "tom": "Drum", "kick": "Bass drum", "axe": "Tools",
             "pickaxe": "Tools", "kitten": "Cat", "peacock": "Bird"}
# Words whose ontology name or WordNet sense is not what the corpus means by them: the corpus's
# `telephone` is speech over a telephone line (Asterisk prompts), not the telephone's ring; `country` a
# spoken country name, not the music genre; `male`/`female` voices, not animals; `die` a death, `ride` a
# cymbal, `electric` a guitar or piano, `blue` a colour (singular of "Blues"); `base`, `unit`, `place` game words.
NOT_MAPPED = frozenset("""telephone note base unit place word letter number digit syllable instruction
description spoken voice synthetic effect kit ingame faction megapack tech low mid high soft loud country
male female human bot electric die sling ride sand blue chat whistler sierra""".split())


def _key(phrase: str) -> str:
    """Comparison key of a word or phrase: singular words, no spaces, hyphens or underscores."""
    words = tagmod.tokenize(phrase.replace("_", " "))
    return "".join(tagmod.singular(w) for w in words)


def by_name(synsets) -> list:
    """WordNet synsets in name order: nltk keeps a synset's pointers in a set, whose order changes with
    Python's hash seed, and a table built from them must not."""
    return sorted(synsets, key=lambda s: s.name())


def _alternatives(name: str) -> list[str]:
    """The names a category goes by: "Canidae, dogs, wolves" -> three; "Roaring cats (lions, tigers)" ->
    roaring cats, lions, tigers; a one-item parenthesis is a qualifier: "Motor vehicle (road)" -> motor vehicle."""
    head, _, inner = name.partition("(")
    alts = [a for a in head.split(",") if a.strip()]
    inner = [a for a in inner.rstrip(")").split(",") if a.strip()]
    return alts + (inner if len(inner) > 1 else [])


class Ontology:
    """Categories of ontology.json by id, with parents, the tag each gives, and a word index."""

    def __init__(self, path: str | os.PathLike, wordnet=None):
        with open(path) as f:
            entries = json.load(f)
        self.name = {e["id"]: e["name"] for e in entries}
        self.parents: dict[str, list[str]] = {e["id"]: [] for e in entries}
        for e in entries:
            for c in e["child_ids"]:
                self.parents[c].append(e["id"])
        self.top = [i for i, p in self.parents.items() if not p]
        self.by_key: dict[str, list[str]] = {}
        for e in entries:
            for alt in _alternatives(e["name"]):
                self.by_key.setdefault(_key(alt), []).append(e["id"])
        # the tags the ontology itself gives ('domestic animals, pets'): the corpus's tags once ancestors are added
        self.by_tag = {e["name"].lower(): e["id"] for e in entries}
        self.wordnet = wordnet

    def tag(self, cid: str) -> str:
        """The tag a category gives: its display name in lower case ('domestic animals, pets')."""
        return self.name[cid].lower()

    def ancestors(self, cid: str) -> set[str]:
        """The category and every category above it (the ontology is a DAG: all parents' paths)."""
        seen, todo = set(), [cid]
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(self.parents[c])
        return seen

    def top_of(self, cid: str) -> list[str]:
        """The top-level categories ('Animal', 'Music', 'Sounds of things', ...) above a category."""
        return sorted(c for c in self.ancestors(cid) if not self.parents[c])

    def named(self, word: str) -> list[str]:
        """The categories whose name or synonym is the word, or its -ing form (`cry` is named "Crying,
        sobbing", `laugh` "Laughter"), or the category's own tag ('crying, sobbing'); [] when none."""
        if word in self.by_tag:
            return [self.by_tag[word]]
        return self.by_key.get(_key(word)) or self.by_key.get(_key(word.rstrip("e") + "ing")) or []

    @lru_cache(maxsize=None)
    def categories_of(self, word: str) -> tuple[str, ...]:
        """The categories a word names directly, else through WordNet; () when none or NOT_MAPPED."""
        if word in NOT_MAPPED:
            return ()
        if word in OVERRIDES:
            return tuple(self.by_key[_key(OVERRIDES[word])][:1])
        direct = self.named(word)
        if direct or self.wordnet is None:
            return tuple(direct or ())
        senses = self.wordnet.synsets(word.replace(" ", "_"), "n")
        if senses and senses[0].lexname() == "noun.artifact":
            return self._nearest(senses[0], WORDNET_ROUTES["noun.artifact"])
        for synset in senses[:MAX_ANIMAL_SENSES]:
            if synset.lexname() == "noun.animal":
                return self._nearest(synset, WORDNET_ROUTES["noun.animal"])
            if sum(lemma.count() for lemma in synset.lemmas() if lemma.name().lower() == word) > RARE_SENSE_COUNT:
                return ()
        return ()

    def _nearest(self, synset, tops: tuple[str, ...]) -> tuple[str, ...]:
        """The categories under ``tops`` of the nearest hypernyms (the synset itself first) whose lemmas name one."""
        frontier, seen = deque([(synset, 0)]), set()
        found, depth_found = [], None
        while frontier:
            s, depth = frontier.popleft()
            if s in seen or depth > MAX_HYPERNYM_DEPTH or (depth_found is not None and depth > depth_found):
                continue
            seen.add(s)
            for lemma in s.lemma_names():
                for cid in self.by_key.get(_key(lemma), ()):
                    if cid not in found and any(self.name[t] in tops for t in self.top_of(cid)):
                        found.append(cid)
                        depth_found = depth
            frontier.extend((h, depth + 1) for h in by_name(s.hypernyms() + s.instance_hypernyms()))
        return tuple(found)

    def expand(self, words) -> list[str]:
        """words plus the tags of every category they reach and of those categories' ancestors."""
        out = list(words)
        # two neighbouring words may name one category ("baby cry", "wind chime", "car alarm")
        pairs = [a + " " + b for a, b in zip(words, words[1:])]
        for w in list(words) + [p for p in pairs if self.by_key.get(_key(p))]:
            for cid in self.categories_of(w):
                out.extend(self.tag(a) for a in sorted(self.ancestors(cid)))
        return list(dict.fromkeys(out))


def open_wordnet(dict_dir: str = "/usr/share/wordnet", cache: str = "/tmp/coala-nltk-data"):
    """nltk's WordNet reader over Debian's wordnet-base (+ wordnet-sense-index for index.sense).

    nltk expects its own data layout (corpora/wordnet, with a `lexnames` file Debian leaves out and
    inside its allowed data path), so the files are copied once into that layout under ``cache`` and
    `lexnames` is written from the table in Debian's lexnames(5WN) manual page, where WordNet documents it."""
    import gzip

    import nltk

    root = Path(cache, "corpora", "wordnet")
    if not (root / "lexnames").exists():
        root.mkdir(parents=True, exist_ok=True)
        for f in Path(dict_dir).iterdir():
            if f.is_file():
                shutil.copy(f, root / f.name)
        if not (root / "index.sense").exists():
            raise RuntimeError(f"no index.sense in {dict_dir}: apt-get install wordnet-sense-index")
        lines = []
        with gzip.open("/usr/share/man/man5/lexnames.5WN.gz", "rt") as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 2 and parts[0].isdigit() and len(parts[0]) == 2:
                    name = parts[1].strip()
                    pos = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}[name.split(".")[0]]
                    lines.append(f"{parts[0]}\t{name}\t{pos}\n")
        (root / "lexnames").write_text("".join(lines))
    if cache not in nltk.data.path:
        nltk.data.path.insert(0, cache)
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


def load_ontology(spec: str, snapshots: str | None, wordnet_dir: str) -> Ontology:
    """The ontology of ``spec``: a path to ontology.json, or github:owner/name@commit read from the git
    snapshot of that repository under ``snapshots`` (as the corpus's GitHub sources are)."""
    from training.corpus.github import GITHUB, snapshot_git_dir

    wordnet = open_wordnet(wordnet_dir)
    if not spec.startswith(GITHUB):
        return Ontology(spec, wordnet)
    repo, _, commit = spec[len(GITHUB):].partition("@")
    if not snapshots:
        raise SystemExit(f"--ontology {spec} needs --snapshots (or give the path of ontology.json)")
    text = subprocess.run(["git", "--git-dir", snapshot_git_dir(snapshots, repo), "show", f"{commit}:ontology.json"],
                          check=True, capture_output=True).stdout
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
        f.write(text)
        f.flush()
        return Ontology(f.name, wordnet)
