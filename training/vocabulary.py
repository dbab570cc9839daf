"""The vocabulary file of a checkpoint: which of its tags describe sounds, and English words onto them.

    python -m training.vocabulary --weights weights/ [--ontology github:audioset/ontology@<commit>]

Writes `vocabulary.json` beside the weights and records its sha256 in their config.json
(`vocabulary_file`, `vocabulary_sha256`), which coala_embed.vocabulary reads (no nltk at run time).

Sound tags: a tag that names an AudioSet category (or reaches one through WordNet from an animal or
artifact sense that is not a proper noun: WordNet reaches "Country" music from every country's name),
or is in one of training/corpus/domains.py's real-world word lists, or in EXTRA_SOUND_TAGS below; less
NOT_SOUND_TAGS. Each is listed under its broad category, the ontology's top-level category.

The table: English words that are not tags (WordNet 3.0 noun and verb lemmas of one or two words, their
irregular plurals and past forms from WordNet's exception lists, the ontology's category names and
synonyms) onto at most MAX_TAGS_PER_WORD sound tags, most specific first: the tags of the category the
word names (or, for the few words of NAME_FIRST_WORDS, whose name it begins: vacuum -> Vacuum cleaner), then
from the word's first WordNet sense that reaches any: its synonyms and derived forms, its hyponyms (two
levels, unless the sense is too general for any three of them to name it, GENERAL_DEPTH and BROAD_BELOW: then
a word whose first sense is so takes no later sense either), its hypernyms nearest first, then the ontology's
ancestors of its category.
Simple plurals and -ing forms are not stored: the package strips them before looking a word up.

With `--data PREPARED` (the training.prepare folder the weights were trained on) the file also lists the
training clips' distinct tag sets, from which coala_embed.tags forms each tag's vector.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from collections import deque
from functools import lru_cache
from pathlib import Path

from coala_embed.checkpoint import CONFIG_NAME, record_file
from coala_embed.vocabulary import FORMAT, VOCABULARY_NAME, Vocabulary
from training.corpus import ontology as onto
from training.corpus.domains import REAL_WORLD_DOMAINS

MAX_TAGS_PER_WORD = 3
MAX_SENSES = 3
HYPONYM_DEPTH = 2
# A sense this close to WordNet's root (entity > physical entity > object > whole > artifact) or with more
# sound tags than BROAD_BELOW below it is broader than any three of them: object -> ice, beach, cave
GENERAL_DEPTH = 5
BROAD_BELOW = 12

# The domains of training/corpus/domains.py under the ontology's top-level names, so that one listing
# groups every sound tag the same way.
DOMAIN_CATEGORY = {"animals": "Animal", "nature": "Natural sounds", "domestic/foley": "Sounds of things",
                   "vehicles/machines": "Sounds of things", "weapons/explosions": "Sounds of things",
                   "human non-speech": "Human sounds", "instruments": "Music"}

# Sound words of the shipped tags that neither the ontology's names nor domains.py hold: General MIDI
# and sample-pack instrument words (taiko, agogo, fret, drawbar, bd = bass drum, hh = hi-hat), voices,
# materials and places heard in the corpus (AudioSet files acoustic environments under "Channel,
# environment and background").
EXTRA_SOUND_TAGS = {
    "Music": """note instrument synth singer soprano alto tenor baritone taiko agogo shakuhachi shanai cabasa
        calliope charang fret fretless nylon drawbar polysynth sawtooth staccato muted percussive chromatic
        rim flam bd hh perc aah ooh melodic harmonic tango pad string electric chiff blown overdriven honky tonk
        pedal tone sustain""",
    "Human sounds": "voice talk chat",
    "Sounds of things": """weapon tank steel brick crystal straw flesh laser muzzle battleaxe cudgel shoe
        mining lumber""",
    "Animal": "mammal reptilian spider fauna",
    "Channel, environment and background": "city road tavern farm church garden seashore ambiance amb",
}
# Tags that reach a category only by a reading the corpus does not mean: "blue" is a colour (not the
# blues), "male"/"female" a voice's sex (not an animal), "bot" a game's bot (WordNet: the botfly). And what
# befalls a game's character (its file names: death, die, hurt, pain, ouch): no sound's source, action,
# material or place. As sound tags they read a dog's bark as `death, pain` and took `croak`, `burn`, `dice`.
# "spring" is the season in every clip that has it (weather and tileset ambience, the spoken word), not a coil.
NOT_SOUND_TAGS = frozenset("blue male female bot dug billy interface soundtrack tower "
                           "death die dying hurt ouch pain spring".split())
# AudioSet names a sound by its source and a generic head: "Traffic noise, roadway noise" is traffic's.
GENERIC_HEAD = re.compile(r"\s+(noise|sounds?)$")
# Words that alone mean the category whose name they begin, where WordNet reaches no sound tag from them
# ("vacuum" is the Vacuum cleaner's sound). Judged one by one among the 76 first words of two-word names that
# map to nothing: "sad" (Sad music), "smoke" (Smoke detector) or "lawn" (Lawn mower) are not such words.
NAME_FIRST_WORDS = frozenset("""vacuum toilet microwave kettle police sewing hammond rhodes mains cupboard
    dental tire throat railroad rail reversing emergency carnatic folk salsa soca""".split())
_key = lru_cache(maxsize=None)(onto._key)  # inflect's singular is slow, and the table asks it 10^5 times

WORDNET_NOTICE = """WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Permission to use, \
copy, modify and distribute this software and database and its documentation for any purpose and without fee or \
royalty is hereby granted, provided that you agree to comply with the following copyright notice and statements, \
including the disclaimer, and that the same appear on ALL copies of the software, database and documentation, \
including modifications that you make for internal use or for distribution. THIS SOFTWARE AND DATABASE IS PROVIDED \
"AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT \
NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR ANY \
PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD \
PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be used \
in advertising or publicity pertaining to distribution of the software and/or database. Title to copyright in this \
software, database and any associated documentation shall at all times remain with Princeton University and \
LICENSEE agrees to preserve same."""  # /usr/share/doc/wordnet-base/copyright, whose terms ask it kept on copies
LICENCES = {
    "ontology": onto.LICENCE + "; https://creativecommons.org/licenses/by-sa/4.0/",
    "wordnet": onto.WORDNET_LICENCE,
    "wordnet_notice": WORDNET_NOTICE,
    "this_file": "Derived from both (category names and synonyms, the WordNet word hierarchy): an adaptation of "
                 "the AudioSet ontology, under CC BY-SA 4.0, with WordNet's notice kept.",
}


def _tag_form(lemma: str) -> str:
    return lemma.lower().replace("_", " ")


class Builder:
    """Sound tags of a model's vocabulary and the table of words onto them."""

    def __init__(self, ontology: onto.Ontology, tags: list[str]):
        self.onto, self.wn, self.tags = ontology, ontology.wordnet, list(tags)
        self._below_cache = {}
        self.category = {t: c for t in self.tags if t not in NOT_SOUND_TAGS and (c := self._category(t))}
        self.sound = [t for t in self.tags if t in self.category]
        self.by_key = {_key(t): t for t in self.sound}
        self.prefixes = {k[:3] for k in self.by_key}  # most WordNet lemmas share none: no inflect for them
        self.head_index: dict[str, list[str]] = {}  # "traffic" -> the id of "Traffic noise, roadway noise"
        self.first_word_index: dict[str, list[str]] = {}  # "vacuum" -> the id of "Vacuum cleaner"
        for cid, name in self.onto.name.items():
            for alt in onto._alternatives(name):
                head = GENERIC_HEAD.sub("", alt.strip().lower())
                if head != alt.strip().lower():
                    self.head_index.setdefault(_key(head), []).append(cid)
                words = re.sub(r"\(.*?\)", "", alt).lower().split()
                if len(words) >= 2 and words[0] in NAME_FIRST_WORDS:
                    self.first_word_index.setdefault(words[0], []).append(cid)

    # -- sound tags --------------------------------------------------------------------------------

    def _category(self, tag: str) -> str | None:
        """The broad category of a sound tag; None for a tag that describes no sound."""
        direct = self.onto.named(tag)
        extra = next((c for c, words in EXTRA_SOUND_TAGS.items() if tag in words.split()), None)
        domain = next((DOMAIN_CATEGORY[d] for d, words in REAL_WORLD_DOMAINS.items() if tag in words), None)
        if direct:  # a name under several top categories (Cowbell: Animal, Music) takes the one domains.py says
            tops = {self.onto.name[t] for cid in direct for t in self.onto.top_of(cid)}
            return domain if domain in tops else self._top(direct[0])
        if extra or domain:
            return extra or domain
        senses = self.wn.synsets(tag, "n")
        if senses and not senses[0].instance_hypernyms() and senses[0].lexname() in ("noun.animal", "noun.artifact"):
            found = self.onto.categories_of(tag)
            return self._top(found[0]) if found else None
        return None

    def _top(self, cid: str) -> str:
        tops = set(self.onto.top_of(cid))
        return next(self.onto.name[t] for t in self.onto.top if t in tops)

    # -- the table ---------------------------------------------------------------------------------

    def category_tags(self, cid: str) -> list[str]:
        """The sound tags a category is named by, then those of its ancestors, nearest first (Vacuum cleaner
        -> 'domestic sounds, home sounds', 'sounds of things'). An ancestor gives the tag it gave the
        training clips below it (its whole name), else that of its first name: "Canidae, dogs, wolves"
        above Dog gives its own tag, never `wolf`, to a puppy."""
        out = self.names_tags(cid)
        frontier, seen = deque(self.onto.parents[cid]), {cid}
        while frontier:
            c = frontier.popleft()
            if c in seen:
                continue
            seen.add(c)
            if tag := self.whole_name_tag(c) or self.tag_named(onto._alternatives(self.onto.name[c])[0]):
                out.append(tag)
            frontier.extend(self.onto.parents[c])
        return out

    def names_tags(self, cid: str) -> list[str]:
        """The sound tags a category's names are: its whole name, then each of its names."""
        named = [t for alt in onto._alternatives(self.onto.name[cid]) if (t := self.tag_named(alt))]
        return list(dict.fromkeys(([whole] if (whole := self.whole_name_tag(cid)) else []) + named))

    def whole_name_tag(self, cid: str) -> str | None:
        """The category's whole name ('domestic sounds, home sounds': the tag the corpus gave its clips) if
        that is a sound tag."""
        return self.onto.tag(cid) if self.onto.tag(cid) in self.category else None

    def tag_named(self, name: str) -> str | None:
        """The sound tag of a category's name: "Human sounds" -> human, "Breathing" -> breath."""
        name = GENERIC_HEAD.sub("", name.strip().lower())
        for form in (name, re.sub(r"ing$", "", name), re.sub(r"ing$", "e", name)):
            if (key := _key(form)) in self.by_key:
                return self.by_key[key]
        return None

    def tag_of(self, lemma: str) -> str | None:
        """The sound tag a WordNet lemma or a word is (plural or singular), or None."""
        plain = re.sub(r"[_ -]", "", lemma.lower())
        return self.by_key.get(_key(_tag_form(lemma))) if plain[:3] in self.prefixes else None

    def _sense_tags(self, synset, related_only=False) -> list[str]:
        """Sound tags one WordNet sense reaches: synonyms and derived forms, hyponyms, hypernyms. A sense
        above or below is named by its first lemma only: structure.n.01 is "structure, construction", and
        a kitchen (a room, a structure) has nothing to do with construction noise. A lemma counts as its tag
        only where the sense is one of the lemma's first MAX_SENSES: head.n.30, a ship's toilet below
        toilet.n.01, is not the `head` the corpus means."""
        out = self._lemma_tags(synset, None)
        for lemma in synset.lemmas():
            # nltk keeps a lemma's pointers in a set: sorted, or the table changes with the hash seed
            related = sorted(lemma.derivationally_related_forms(), key=lambda d: (d.synset().name(), d.name()))
            out += [t for d in related if (t := self.tag_of(d.name())) and self._common(d.name(), d.synset())]
        if related_only:
            return out
        if not self._too_broad(synset):
            out += self._below(synset)
        frontier, seen = deque((h, 1) for h in onto.by_name(synset.hypernyms())), set()
        while frontier:
            s, depth = frontier.popleft()
            if s in seen or depth > onto.MAX_HYPERNYM_DEPTH:
                continue
            seen.add(s)
            out += self._lemma_tags(s)
            frontier.extend((h, depth + 1) for h in onto.by_name(s.hypernyms()))
        return out

    def _common(self, name: str, synset) -> bool:
        return synset in self.wn.synsets(name, synset.pos())[:MAX_SENSES]

    def _lemma_tags(self, synset, lemmas=1) -> list[str]:
        """The sound tags a sense's first `lemmas` lemmas are (None: all), each where the sense is a common one."""
        return [t for n in synset.lemma_names()[:lemmas] if (t := self.tag_of(n)) and self._common(n, synset)]

    def _below(self, synset) -> list[str]:
        """Sound tags of a noun sense's hyponyms, HYPONYM_DEPTH levels down (verbs' hyponyms are manners of acting)."""
        if synset not in self._below_cache:
            level, out = [synset], []
            for _ in range(HYPONYM_DEPTH if synset.pos() == "n" else 0):
                level = [h for s in level for h in onto.by_name(s.hyponyms())]
                out += [t for s in level for t in self._lemma_tags(s)]
            self._below_cache[synset] = out
        return self._below_cache[synset]

    def _too_broad(self, synset) -> bool:
        """A sense so general that any three tags below it would misname it (object -> ice, beach, cave, at
        depth 2; device -> alarm, catapult, fan, 22 tags below): it takes its tags from above, or none."""
        return synset.min_depth() <= GENERAL_DEPTH or len(set(self._below(synset))) > BROAD_BELOW

    def word_tags(self, word: str) -> list[str]:
        """At most MAX_TAGS_PER_WORD sound tags for a word or phrase that is not a tag, most specific first."""
        key = _key(word)
        named = self.onto.by_key.get(key) or self.head_index.get(key) or self.first_word_index.get(word) or ()
        found = [t for cid in named for t in self.names_tags(cid)]
        if " " in word:  # a phrase's own words that are tags, head word first: car horn -> horn, car
            found += [t for w in reversed(word.split()) if (t := self.tag_of(w))]
        # a word that names a category takes from WordNet only its synonyms and derived forms: the first
        # sense of `siren` is a seductive woman, whose hypernyms are not the Siren category's
        senses = [s for pos in "nv" for s in self.wn.synsets(word.replace(" ", "_"), pos)[:MAX_SENSES]]
        def first_sense_tags(related_only):
            for s in senses:
                if s.instance_hypernyms():
                    continue
                if tags := self._sense_tags(s, related_only):
                    return tags
                if not related_only and self._below(s) and self._too_broad(s):  # tags below refused: the word's
                    return []  # common sense is broader than they are, and a rarer sense is not what it means
            return []

        above = [t for cid in named for t in self.category_tags(cid)]
        reached = first_sense_tags(related_only=bool(named))
        if named and not (found or reached or above):  # Thunderstorm is right under "Natural sounds"
            reached = first_sense_tags(related_only=False)
        found += reached
        # the ontology through WordNet only where WordNet itself reached a tag: alone it finds "Crowd" in
        # a traffic jam (a crowding) and "Country" music in every country
        if word not in onto.NOT_MAPPED and not named and reached:
            above = [t for cid in self.onto.categories_of(word) for t in self.category_tags(cid)]
        found += above
        return list(dict.fromkeys(found))[:MAX_TAGS_PER_WORD]

    def words(self) -> list[str]:
        """The words the table considers: WordNet lemmas (one or two words) and exceptions, category names."""
        out = set()
        for pos in "nv":
            for lemma in self.wn.all_lemma_names(pos):
                if re.fullmatch(r"[a-z]+(_[a-z]+)?", lemma):
                    out.add(_tag_form(lemma))
            for variant in self.wn._exception_map[pos]:  # mice -> mouse, geese -> goose, ran -> run
                if variant.isalpha():
                    out.add(variant)
        for name in self.onto.name.values():
            for alt in onto._alternatives(name):
                alt = re.sub(r"\s+", " ", alt.strip().lower())
                out.update({alt, GENERIC_HEAD.sub("", alt)})
        return sorted(w for w in out if w not in self.tags and re.fullmatch(r"[a-z][a-z '-]*", w))

    def table(self) -> dict[str, list[str]]:
        exceptions = {v: k for pos in "nv" for v, k in self.wn._exception_map[pos].items()}
        out = {}
        for word in self.words():
            base = exceptions.get(word, [word])[0].replace("_", " ")
            if base in self.tags and base not in self.category:  # `dying` is `die`, a tag judged no sound
                continue
            tags = [base] if base in self.category else self.word_tags(base)
            if tags:
                out[word] = tags
        return out


def training_tag_sets(prepared: Path, tags: list[str]) -> list[list[int]]:
    """The distinct tag sets of a prepared folder's training patches, as sorted tag indices, in order."""
    import numpy as np

    meta = json.loads((Path(prepared) / "meta.json").read_text())
    if meta["tags"] != tags:
        raise ValueError(f"{prepared}: its tags are not the checkpoint's (another corpus?)")
    rows = np.unique(np.load(Path(prepared) / "train_tags.npy", mmap_mode="r") > 0, axis=0)
    return sorted(np.flatnonzero(r).tolist() for r in rows if r.any())


def build(ontology: onto.Ontology, tags: list[str], ontology_source: str, tag_sets=None) -> dict:
    b = Builder(ontology, tags)
    grouped = {}
    for t in b.sound:
        grouped.setdefault(b.category[t], []).append(t)
    return {
        "format": FORMAT, "format_version": 1,
        "licences": LICENCES,
        "sources": {"ontology": ontology_source, "wordnet": "WordNet 3.0 (Debian wordnet-base)",
                    "built_by": "python -m training.vocabulary"},
        "sound_tags": {c: grouped[c] for c in [ontology.name[t] for t in ontology.top] if c in grouped},
        "other_tags": [t for t in tags if t not in b.category],
        "words": b.table(),
        **({"tag_sets": tag_sets} if tag_sets else {}),
    }


def write(folder: Path, vocabulary: dict) -> Path:
    """vocabulary.json (one word per line, for review and diffs) and its sha256 in config.json."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in vocabulary["words"].items()]
    head = json.dumps({k: v for k, v in vocabulary.items() if k not in ("words", "tag_sets")}, indent=1)
    sets = ""
    if vocabulary.get("tag_sets"):  # one set per line too
        sets = ',\n "tag_sets": [\n' + ",\n".join(f"  {json.dumps(s)}" for s in vocabulary["tag_sets"]) + "\n ]"
    path = folder / VOCABULARY_NAME
    path.write_text(head[:-2] + ',\n "words": {\n' + ",\n".join(lines) + "\n }" + sets + "\n}\n")
    record_file(folder, "vocabulary", path)
    return path


def fitting(source, tags) -> Path:
    """The vocabulary.json at `source` (the file or a checkpoint folder holding it), checked to be built
    for these tags (e.g. by another run on the same corpus: the corpus fixes the tags); ValueError if not."""
    source = Path(source)
    source = source / VOCABULARY_NAME if source.is_dir() else source
    Vocabulary.read(source, tags)
    return source


def copy_into(folder: Path, source: Path) -> Path:
    """A vocabulary.json that `fitting` accepted for this checkpoint's tags, copied beside its weights, so
    an export need not rebuild it."""
    path = folder / VOCABULARY_NAME
    shutil.copyfile(source, path)
    record_file(folder, "vocabulary", path)
    return path




def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.vocabulary", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path, help="checkpoint folder (config.json with its tags)")
    p.add_argument("--ontology", default=onto.ONTOLOGY_SOURCE, help="ontology.json, or github:owner/name@commit")
    p.add_argument("--snapshots", default="/work/.mirror", help="git snapshots of github: sources")
    p.add_argument("--wordnet", default="/usr/share/wordnet", help="WordNet 3.0 dict folder")
    p.add_argument("--data", type=Path, help="the training.prepare folder the weights were trained on: list its "
                                             "distinct training tag sets, from which each tag's vector is formed")
    p.add_argument("--keep-tag-sets", action="store_true",
                   help="keep the tag sets of the vocabulary.json already beside the weights (rebuild the rest)")
    args = p.parse_args(argv)
    tags = json.loads((args.weights / CONFIG_NAME).read_text())["tags"]
    if args.data and args.keep_tag_sets:
        p.error("--data and --keep-tag-sets both say where the tag sets come from: give one")
    if args.keep_tag_sets:
        tag_sets = Vocabulary.read(args.weights / VOCABULARY_NAME, tags).tag_sets or None
    else:
        tag_sets = training_tag_sets(args.data, tags) if args.data else None
    vocabulary = build(onto.load_ontology(args.ontology, args.snapshots, args.wordnet), tags, args.ontology, tag_sets)
    path = write(args.weights, vocabulary)
    n_sound = sum(map(len, vocabulary["sound_tags"].values()))
    for category, members in vocabulary["sound_tags"].items():
        print(f"{category} ({len(members)}): {' '.join(members)}")
    print(f"other ({len(vocabulary['other_tags'])}): {' '.join(vocabulary['other_tags'])}")
    print(f"{n_sound} sound tags, {len(tags) - n_sound} others; {len(vocabulary['words'])} words in the table; "
          f"{len(vocabulary.get('tag_sets', []))} training tag sets; "
          f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
