"""English words onto a model's tags: which tags describe sounds, and the words that are not tags.

A checkpoint may hold `vocabulary.json` (written by `python -m training.vocabulary`, its sha256 in
config.json): the tags that describe sounds, by broad category (the AudioSet ontology's top level), the
others (names, places, game words of the training files' paths), and a table of English words that are
not tags (from WordNet 3.0 and the AudioSet ontology: synonyms, hypernyms, hyponyms, derived forms) onto
a few sound tags each, most specific first. Without the file every tag counts as a sound tag and only
tags resolve.

It may also hold the distinct tag sets of the training clips (`tag_sets`, as indices into the tags). The
tag encoder only ever saw whole sets ('bark' always came with 'dog', 'domestic animals, pets', 'animal'),
so a lone tag fed to it is an input it never saw; coala_embed.tags forms a tag's vector from the sets
that hold it instead.
"""
from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

VOCABULARY_NAME = "vocabulary.json"
FORMAT = "coala-embed-vocabulary"
# words a label may hold that name nothing ("rain on a window"); none of them is a tag of the shipped model
STOP_WORDS = frozenset("a an the of on in at to into onto with and or by from for over under near its".split())


class UnmappedWords(UserWarning):
    """Words of a phrase that map to no tag, left out of what the phrase stands for."""


def word_forms(word: str):
    """The word, then the stems of simple English plurals and -ing forms (flies, boxes, running, hiking)."""
    yield word
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)] + repl
            yield stem
            if suffix == "ing" and stem[-1] == stem[-2]:  # running -> run
                yield stem[:-1]


@dataclasses.dataclass
class Vocabulary:
    """A model's tags (in its order), its sound tags by broad category, and the table of other words."""

    tags: list[str]
    categories: dict[str, list[str]]  # broad category -> its sound tags; empty: every tag is one
    words: dict[str, list[str]]  # a word that is not a tag -> the sound tags it stands for
    licences: dict = dataclasses.field(default_factory=dict)
    tag_sets: list[list[int]] = dataclasses.field(default_factory=list)  # training clips' distinct tag sets

    @classmethod
    def plain(cls, tags) -> Vocabulary:
        """The vocabulary of a checkpoint without vocabulary.json: its tags, all of them sound tags."""
        return cls(list(tags), {}, {})

    @classmethod
    def read(cls, path: Path, tags) -> Vocabulary:
        """vocabulary.json (already verified against its sha256); its tags must be the model's."""
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        known = set(tags)
        listed = [t for group in data["sound_tags"].values() for t in group] + data["other_tags"]
        mapped = {t for targets in data["words"].values() for t in targets}
        if set(listed) != known or len(listed) != len(known) or not mapped <= known:
            raise ValueError(f"{path}: its tags are not the model's ({len(set(listed) ^ known)} differ, "
                             f"{len(mapped - known)} of the table's are unknown)")
        tag_sets = data.get("tag_sets", [])
        if any(not s or min(s) < 0 or max(s) >= len(tags) for s in tag_sets):
            raise ValueError(f"{path}: a tag set is empty or names a tag index outside the model's {len(tags)}")
        return cls(list(tags), data["sound_tags"], data["words"], data.get("licences", {}), tag_sets)

    @property
    def sound_tags(self) -> list[str]:
        """The tags that describe sounds, in the model's order."""
        if not self.categories:
            return list(self.tags)
        sound = {t for group in self.categories.values() for t in group}
        return [t for t in self.tags if t in sound]

    def lookup(self, word: str) -> list[str] | None:
        """A word's tags: itself if it (or its singular or stem) is a tag, else its entry in the table."""
        known = set(self.tags)  # a set per call: a Vocabulary is plain data, and resolving is not hot
        forms = list(word_forms(word))  # a tag's plural is that tag ('dogs' -> dog, not the table's Canidae)
        found = next((f for f in forms if f in known), None) or next((f for f in forms if f in self.words), None)
        return None if found is None else [found] if found in known else list(self.words[found])

    def resolve(self, text: str) -> list[str]:
        """The tags a word or phrase stands for. The whole phrase is looked up first; then each run of two
        words, else each word (words like 'on' or 'a' are skipped). A phrase's words that map to no tag are
        left out with a warning naming them ('a dog barking loudly in the park' -> dog, bark); ValueError
        where no word maps (a single word: that word)."""
        if str(text).strip().lower() in self.tags:  # a tag as spelt, ontology names included ('bee, wasp, etc.')
            return [str(text).strip().lower()]
        words = [w for w in re.split(r"[\s_,;/-]+", str(text).lower()) if w]
        if not words:
            raise ValueError(f"{text!r}: no words")
        whole = self.lookup(" ".join(words))
        if whole is not None:
            return whole
        out, unknown, i = [], [], 0
        while i < len(words):
            pair = self.lookup(" ".join(words[i:i + 2])) if i + 1 < len(words) else None
            found, step = (pair, 2) if pair is not None else (self.lookup(words[i]), 1)
            if found is not None:
                out += found
            elif words[i] not in STOP_WORDS:
                unknown.append(words[i])
            i += step
        named = ", ".join(map(repr, unknown)) or "nothing"
        if not out:
            raise ValueError(f"{named} in {text!r} maps to no tag of this model (coala-embed tags --list-tags "
                             "lists them; a model's vocabulary.json maps other words)")
        if unknown:  # as a text-to-audio model reads every word it can, and says which it could not
            warnings.warn(f"{named} in {text!r} maps to no tag of this model: left out, {text!r} stands for "
                          f"{', '.join(dict.fromkeys(out))}", UnmappedWords)  # once per phrase and process
        return list(dict.fromkeys(out))
