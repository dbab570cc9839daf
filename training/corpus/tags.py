"""Tag cleaning as in COALA (Favory et al. 2020, sec. 3.1).

Raw tags -> words: split, keep alphabetic tokens of 2+ characters, lowercase,
drop English stop-words and corpus-specific useless words, singularise with
``inflect``; then vocabulary filters: drop tags in >70% of sounds, in <10
sounds, keep the 1000 most frequent, drop sounds left without tags.

All functions are pure (no I/O).
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Hashable, Iterable, List, Optional, Sequence, Tuple

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# Words that come from file-system paths / formats / packaging, not content.
USELESS_WORDS = frozenset("""
sound sounds sfx snd data usr share games game ogg wav wave flac mp mp3 oga aif aiff
sf sf2 sf3 file files sample samples audio dat tmp misc etc lib local opt bin doc
debian pkg package deb stereo mono hz khz bit bits bps kbps left right ch channel
new old copy final version ver test untitled default mix master track take
en us uk de fr es it ru ro ca bg be el da lt tr pl nl pt sv fi hu cs sk ja zh ko
ii iii iv vi vii viii ix xi xii
megaglest hedgewars tuxpaint wesnoth widelands lincity ng supertux scorched minetest
colobot sonic pi lmms asterisk hydrogen drumkit drumkits ad redeclipse supertuxkart
fluid fluidr timgm musescore freepats stamp stamps core zip mod mods public
""".split())

# Words inflect wrongly "singularises" (bus -> bu, gas -> ga, ...).
_NO_SINGULAR = frozenset("""
bus gas lens atlas canvas alias bias yes plus chaos christmas texas cos always
perhaps various famous nervous lotus cactus octopus virus walrus platypus
hippopotamus rhinoceros asparagus iris tennis dress chess glass grass brass boss
bass kiss pass moss mass class cross bless hiss mess fuss ukulele news series
species physics mathematics bellows scissors pants trousers jeans glasses
""".split())

# scikit-learn's list also stops number words; NLTK's, which the COALA reference used, does not, and a
# spoken 'three' is a word the corpus has (GCompris, Asterisk digits)
NUMBER_WORDS = frozenset("""one two three four five six eight nine ten eleven twelve fifteen twenty forty
fifty sixty hundred""".split())
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) - NUMBER_WORDS

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")


def tokenize(text: str) -> List[str]:
    """Split ``text`` into alphabetic words (camelCase, snake_case, digits split)."""
    out = []
    for chunk in re.split(r"[^A-Za-z]+", text):
        if not chunk:
            continue
        for w in _CAMEL.findall(chunk):
            out.append(w.lower())
    return out


@lru_cache(maxsize=None)
def _engine():
    import inflect

    return inflect.engine()


@lru_cache(maxsize=100000)
def singular(word: str) -> str:
    """Singular form of an (English) noun; unchanged if already singular."""
    if word in _NO_SINGULAR or len(word) <= 3:
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    s = _engine().singular_noun(word)
    if not s or len(s) < 2:
        return word
    return s


def clean_words(texts: Iterable[str], extra_stop: Iterable[str] = ()) -> List[str]:
    """Raw tag strings -> unique cleaned words, in first-seen order."""
    extra = set(extra_stop)
    seen, out = set(), []
    for text in texts:
        for w in tokenize(text):
            if len(w) < 2 or not w.isalpha():
                continue
            if w in STOP_WORDS or w in USELESS_WORDS or w in extra:
                continue
            w = singular(w)
            if w in STOP_WORDS or w in USELESS_WORDS or w in extra or len(w) < 2:
                continue
            if w not in seen:
                seen.add(w)
                out.append(w)
    return out


def build_vocab(tag_lists: Sequence[Sequence[str]], max_frac: float = 0.7,
                min_count: int = 10, max_tags: int = 1000,
                groups: Optional[Sequence[Hashable]] = None) -> List[str]:
    """Vocabulary after the COALA frequency filters, most frequent first.

    Counts are document frequencies (number of sounds carrying the tag).
    Ties are broken alphabetically so the result is deterministic.
    With ``groups`` (one id per sound, e.g. its source file), ``min_count`` counts distinct
    groups: the clips cut from one long recording all carry its title words, and a word heard in
    one recording only must not become a tag however many clips that recording gives.
    """
    n = len(tag_lists)
    df = Counter()
    for tags in tag_lists:
        df.update(set(tags))
    support = df
    if groups is not None:
        seen = {(t, g) for tags, g in zip(tag_lists, groups) for t in set(tags)}
        support = Counter(t for t, _ in seen)
    kept = [(t, c) for t, c in df.items() if support[t] >= min_count and c <= max_frac * n]
    kept.sort(key=lambda tc: (-tc[1], tc[0]))
    return [t for t, _ in kept[:max_tags]]


def apply_vocab(tag_lists: Sequence[Sequence[str]], vocab: Sequence[str]
                ) -> Tuple[List[int], List[List[str]]]:
    """Restrict each sound's tags to ``vocab``; drop sounds left without tags.

    Returns (indices of kept sounds, their filtered tag lists).
    """
    v = set(vocab)
    idx, out = [], []
    for i, tags in enumerate(tag_lists):
        kept, seen = [], set()
        for t in tags:
            if t in v and t not in seen:
                seen.add(t)
                kept.append(t)
        if kept:
            idx.append(i)
            out.append(kept)
    return idx, out


def filter_tags(tag_lists: Sequence[Sequence[str]], max_frac: float = 0.7,
                min_count: int = 10, max_tags: int = 1000, groups: Optional[Sequence[Hashable]] = None):
    """build_vocab + apply_vocab. Returns (vocab, kept indices, filtered tags)."""
    vocab = build_vocab(tag_lists, max_frac, min_count, max_tags, groups)
    idx, tags = apply_vocab(tag_lists, vocab)
    return vocab, idx, tags
