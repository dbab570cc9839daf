"""Raw tag text per source: what each source really says about a file (path, names, side files).

A tagger is ``f(root, rel) -> list of raw strings`` (cleaned later by training/corpus/tags.py), or None
to leave the file out. Speech in many languages is tagged by the English key word the source
gives and ``speech``, never by the language: one voice reads each language in these sources, so
a language tag would name a speaker and teach the loss to tell speakers apart.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional

SPEECH = "speech"


def path_tag_text(rel: str) -> List[str]:
    """Directory names and file stem."""
    p = Path(rel)
    return [*p.parent.parts, p.stem]


def dirs_tag_text(rel: str) -> List[str]:
    """Directory names only: for sources whose file names are ids (donateacry's uuids)."""
    return list(Path(rel).parent.parts)


@lru_cache(maxsize=None)
def _inflect():
    import inflect
    return inflect.engine()


def number_words(text: str) -> Optional[str]:
    """'16' -> 'sixteen'; None if ``text`` is not a whole number."""
    return _inflect().number_to_words(int(text)).replace("-", " ") if text.isdigit() else None


# A spoken description (<stamp>_desc[_ll].ogg) is tagged as speech only, without its language
# (measured on the rebuilt corpus: E-C +3.5 points on fsdd spoken digits, AE-C +2.9 on held-out
# notes; README).
SPOKEN_DESCRIPTION_TAGS = [SPEECH, "voice", "spoken", "description"]


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


def _letter_or_number(stem: str) -> List[str]:
    """GCompris alphabet names: 'U0061' (a code point) or '15'; digits and numbers by word."""
    m = re.fullmatch(r"U([0-9A-Fa-f]{4,5})", stem)
    ch = chr(int(m.group(1), 16)) if m else stem
    word = number_words(ch)
    return [word, "number"] if word else ["letter"]


def gcompris_tags(root: str, rel: str) -> Optional[List[str]]:
    """GCompris-voices ``<lang>/<category>/<englishkey>.ogg``: the English key word(s) + speech.
    Instructions (intro, misc) are sentences named after the activity: speech + instruction."""
    parts = Path(rel).parts
    if len(parts) < 3:
        return None
    category, stem = parts[1], Path(rel).stem
    if category == "alphabet":
        return [SPEECH, *_letter_or_number(stem)]
    if category in ("intro", "misc"):
        return [SPEECH, "instruction"]
    key = stem.replace("_", " ")
    if category == "colors":
        return [SPEECH, "word", "colour", key]
    if category in ("geography", "geo_country", "france"):
        return [SPEECH, "word", "place", key]
    return [SPEECH, "word", key]


def klettres_tags(root: str, rel: str) -> List[str]:
    """klettres ``<lang>/{alpha,syllab}/<name>.ogg``: letters and syllables read aloud."""
    kind = Path(rel).parent.name
    return [SPEECH, "letter" if kind == "alpha" else "syllable"]


def ktuberling_tags(root: str, rel: str) -> List[str]:
    """ktuberling ``sounds/<lang>/<object>.ogg``: object names (English keys, ``theme_object``)."""
    stem = Path(rel).stem
    return [SPEECH, "word", stem.split("_")[-1]]


def qabcs_tags(root: str, rel: str) -> List[str]:
    """qabcs: ``all/noises/<thing>.ogg`` are sounds of the thing; ``<lang>/sounds/...`` is speech
    (words in the language's own script: tagged speech + word/letter only)."""
    p = Path(rel)
    if "noises" in p.parts:
        return [p.stem.replace("_", " ")]
    return [SPEECH, "word" if "words" in p.parts else "letter"]


def asterisk_tags(root: str, rel: str) -> List[str]:
    """Asterisk prompts ``<voice>/[sub/]<english-key>.wav`` in any language: the English key
    (``vm-goodbye``), digits by number word, + speech and telephone."""
    p = Path(rel)
    word = number_words(p.stem)
    sub = [d for d in p.parent.parts[p.parent.parts.index("sounds") + 2:]] if "sounds" in p.parts else []
    return [SPEECH, "telephone", *sub, word or p.stem.replace("-", " ")]


# body_percussion file names: <part>_[l|r|lin|rout|lout|rin]_[vlN]_rrN.wav: round robin and
# velocity layer are recording codes, sides are not sounds
BODY_CODES = {"rr", "vl", "l", "r", "lin", "rout", "lout", "rin"}
BODY_WORDS = {"bellycenter": "belly centre", "bellyside": "belly side", "chestside": "chest side",
              "chestthump": "chest thump", "fingerclap": "finger clap", "halfstomp": "half stomp",
              "handclap": "hand clap", "pinkysnap": "pinky finger snap", "shoulderout": "shoulder",
              "snap": "finger snap"}


def body_percussion_tags(root: str, rel: str) -> List[str]:
    words = [w for w in re.split(r"[_\d]+", Path(rel).stem) if w and w not in BODY_CODES]
    return ["body", "percussion", *(BODY_WORDS.get(w, w) for w in words)]


# dynamics markings, as the rendered notes word velocity (soft below 80, loud above)
DYNAMICS = {"pp": "soft", "p": "soft", "mp": "soft", "mf": "loud", "f": "loud", "ff": "loud"}


def register(pitch: int) -> str:
    """The register word of a MIDI note, as the rendered soundfont notes are tagged: C3 and C5 split it."""
    return "low" if pitch < 48 else ("mid" if pitch < 72 else "high")


def octave_register(octave: int) -> str:
    """The register of a note named with its octave (A3, Gb4): the register of that octave's C."""
    return register(12 * (octave + 1))


def piano_tags(root: str, rel: str) -> Optional[List[str]]:
    """SplendidGrandPiano ``Samples/<dynamic> <note><octave>.flac``: piano + dynamics + register
    (the words the rendered soundfont notes use)."""
    m = re.fullmatch(r"(pp|mp|mf|ff) [A-G]#?(-?\d)", Path(rel).stem, re.IGNORECASE)
    if not m:
        return None
    return ["acoustic grand piano", "piano", DYNAMICS[m.group(1).lower()], octave_register(int(m.group(2)))]


# Sample libraries (sfz instruments) name a file by note, dynamic, articulation and take:
# ``a3_f_rr2.wav``, ``027-D#1-FF.flac``, ``gb4mp.flac``, ``HEADROOM PIANO LEVEL5 CLOSE 99.flac``. The
# instrument itself comes from the source's theme (sources.csv); these are the words of the codes.
SAMPLE_WORDS = {**DYNAMICS, "level1": "soft", "level2": "soft", "level4": "loud", "level5": "loud",
                "s": "staccato", "ss": "staccato", "sus": "sustain", "pizz": "pizzicato", "arco": "bowed",
                "pluck": "plucked", "finger": "plucked", "mute": "muted", "ghost": "muted", "nail": "plucked",
                "scrape": "scrape", "flam": "flam", "noise": "noise", "release": "release"}
# MTG saxophones: <voice>_<f|m|p|b|k>_<n>, b = breath noise, k = key clicks
SAX_WORDS = {**SAMPLE_WORDS, "alt": "alto", "ten": "tenor", "sop": "soprano", "bar": "baritone",
             "m": "loud", "b": "breath", "k": "key click"}
# Gogodze Phu drums: kick, snare (centre, edge, side stick), three toms, hi-hat (closed, foot, open...)
DRUM_WORDS = {"ks": "kick", "sc": "snare", "se": "snare", "ss": "snare side stick", "th": "tom",
              "tm": "tom", "tl": "tom", "hc": "hi hat closed", "hf": "hi hat pedal", "hh": "hi hat",
              "hl": "hi hat", "ho": "hi hat open", "ht": "hi hat"}
_NOTE = re.compile(r"([a-g])(b|#)?(-?\d)(pp|mp|mf|ff|p|f)?")


def sample_library_tagger(words: Dict[str, str], midi_numbers: bool = True) -> Callable[[str, str], List[str]]:
    """A tagger of a sample library's file names: the words of its codes + the register of its note
    (a note name, or a MIDI number 21-108 where the library's numbers are MIDI notes), in the
    registers of the rendered soundfont notes."""
    def tags(root: str, rel: str) -> List[str]:
        out = []
        for token in re.split(r"[\s_/.-]+", rel.lower()):
            note = _NOTE.fullmatch(token)
            if note:
                out.append(octave_register(int(note.group(3))))
                token = note.group(4) or ""
            elif midi_numbers and token.isdigit() and 21 <= int(token) <= 108:
                out.append(register(int(token)))
            if token in words:
                out.append(words[token])
        return out
    return tags


def donateacry_tags(root: str, rel: str) -> List[str]:
    """donateacry: ``<reason>/<uuid>-<time>-<version>-<gender>-<age>-<reason code>.wav``."""
    return ["baby", "infant", "cry", "crying", *dirs_tag_text(rel)]


# NOAA SanctSound exemplars (files/SanctSound_<site>_<deployment>_<category>_<time>Z[_<n>dBgain].wav):
# the category word of the file name. One recording is often there several times (case variants,
# a gained copy, a second label at the same start time: humpbackwhale and soundscape); it gives one
# clip set, tagged with the words of all its labels. Speed-altered copies (whale calls played 2-10x
# faster to be audible) are left out: their pitch and timing are not the animal's. Weather and
# ambience (rain, wind, soundscape) heard through a hydrophone sound nothing like those words in air.
SANCTSOUND_WORDS = {
    "humpbackwhale": "humpback whale", "hwsong": "humpback whale song", "finwhale": "fin whale",
    "bluewhale": "blue whale", "graywhale": "gray whale", "minkewhale": "minke whale", "minke": "minke whale",
    "spermwhale": "sperm whale", "seiwhale": "sei whale", "northatlanticrightwhale": "right whale",
    "killerwhale": "killer whale orca", "dolphins": "dolphin", "dolphin": "dolphin",
    "dolphinsandfish": "dolphin fish", "odontocetes": "dolphin", "odontoceteclicks": "dolphin click",
    "odontoceteandship": "dolphin ship", "snappingshrimp": "snapping shrimp", "fishchorus": "fish chorus",
    "bocaccio": "fish", "redgrouper": "grouper fish", "blackgrouper": "grouper fish", "damselfish": "fish",
    "atlanticcod": "cod fish", "toadfish": "toadfish fish", "plainfinmidshipman": "midshipman fish",
    "atlanticmidshipman": "midshipman fish", "sealionbark": "sea lion bark", "pinnipedbark": "seal bark",
    "unknownpinnipedbark": "seal bark", "vessel": "ship", "ship": "ship", "largeship": "ship",
    "cruiseship": "ship", "smallboat": "boat", "largeboat": "boat", "sonar": "sonar",
    "echosounder": "sonar echo sounder", "sonar_echosounder": "sonar echo sounder", "lfasonar": "sonar", "mfasonar": "sonar", "sealbomb": "explosion",
    "explosion": "explosion", "scubadivers": "scuba diver breathing bubbles", "pinger": "beep",
    "fishingpinger": "beep", "acousticrelease": "beep"}
_SANCTSOUND = re.compile(r"SanctSound_([A-Z]{2}\d\d_\d\d)_([A-Za-z_]+?)_(\d{8}T\d{6}Z)(_\d+dB(?:gain)?)?", re.I)


@lru_cache(maxsize=None)
def _sanctsound_recordings(folder: str) -> Dict[str, tuple]:
    """{file name: (the recording's first file name, words of all its labels)} of a SanctSound folder."""
    by_key: Dict[tuple, list] = {}
    for name in sorted(p.name for p in Path(folder).glob("*.wav")):
        m = _SANCTSOUND.fullmatch(Path(name).stem)
        if m:
            by_key.setdefault((m.group(1), m.group(3)), []).append((name, m.group(2).lower()))
    out = {}
    for files in by_key.values():
        words = [SANCTSOUND_WORDS[c] for _, c in files if c in SANCTSOUND_WORDS]
        for name, _ in files:
            out[name] = (files[0][0], list(dict.fromkeys(words)))
    return out


def sanctsound_tags(root: str, rel: str) -> Optional[List[str]]:
    p = Path(root) / rel
    first, words = _sanctsound_recordings(str(p.parent)).get(p.name, (None, []))
    return ["underwater", *words] if first == p.name and words else None


def espeak_tags(root: str, rel: str) -> List[str]:
    """Synthetic speech <voice>/<word>_s<speed>_p<pitch>.wav: the word + speech word synthetic."""
    return [SPEECH, "word", "synthetic", Path(rel).stem.rsplit("_s", 1)[0].replace("-", " ")]


TAGGERS: Dict[str, Callable[[str, str], Optional[List[str]]]] = {
    "path": lambda root, rel: path_tag_text(rel),
    "dirs": lambda root, rel: dirs_tag_text(rel),
    "tuxpaint": tuxpaint_tags,
    "gcompris": gcompris_tags,
    "klettres": klettres_tags,
    "ktuberling": ktuberling_tags,
    "qabcs": qabcs_tags,
    "asterisk": asterisk_tags,
    "body_percussion": body_percussion_tags,
    "donateacry": donateacry_tags,
    "espeak": espeak_tags,
    "piano": piano_tags,
    "samples": sample_library_tagger(SAMPLE_WORDS),
    "solosax": sample_library_tagger(SAX_WORDS, midi_numbers=False),  # its numbers are take indices
    "drums": sample_library_tagger(DRUM_WORDS),
    "bobobo_cajon": sample_library_tagger({"bobobo": "bobobo", "cajon": "cajon", "bass": "low",
                                           "tenor": "mid", "treble": "high"}, midi_numbers=False),
    "sanctsound": sanctsound_tags,
}


# ----------------------------------------------------------------------------- held-out sets
# A labeller maps a file of a held-out source to (label, group), or None to leave it out. The
# group keeps clips of one recording (or speaker) on one side of a cross-validation split.

def openclonk_label(rel: str):
    """OpenClonk ``planet/Sound.ocg/<Category>.ocg/.../<Name><n>.wav``: label = the category
    (the Clonk's own sounds by their sub-folder: Action, Movement, Skin = voice); group = folder
    + name without its variant number (Flutter1..3 are takes of one sound). UI sounds left out."""
    parts = [p[:-4] if p.endswith(".ocg") else p for p in Path(rel).parts]
    if len(parts) < 4 or parts[:2] != ["planet", "Sound"] or parts[2] in ("UI",):
        return None
    label = parts[2] if parts[2] != "Clonk" else "Clonk" + ("Voice" if parts[3] == "Skin" else parts[3])
    if len(parts) == 4 and parts[2] == "Clonk":  # a file directly in Clonk.ocg
        label = "ClonkAction"
    group = "/".join(parts[2:-1] + [re.sub(r"\d+$", "", Path(rel).stem)])
    return label, group


DSPSPEECH_WORDS = ["shuzi", "yuyin", "yuyan", "shibie", "zhongguo", "zonggong", "beijing_capital",
                   "beijing_background", "shanghai", "shanghang", "fudan", "fandian", "speech", "speaker",
                   "signal", "process", "print", "open", "close", "project"]
DSPSPEECH_TAKES = 5  # of the 20 takes of each word per speaker, enough for a development set


def dspspeech_label(rel: str):
    """DSPSpeech-20 ``speech_data/<speaker>/<speaker>-<word>-<take>.wav``: label = the word
    (10 Mandarin, 10 English), group = the speaker; the first DSPSPEECH_TAKES takes."""
    m = re.fullmatch(r"(\d+)-(\d\d)-(\d\d)", Path(rel).stem)
    if not m or int(m.group(3)) > DSPSPEECH_TAKES or int(m.group(2)) >= len(DSPSPEECH_WORDS):
        return None
    return DSPSPEECH_WORDS[int(m.group(2))], m.group(1)


# Yellowstone sound library (NPS, public domain): field recordings by broad category. A recording
# is in the snapshot up to three times (`Sandhill Crane/`, `Crane (sandhill)/`, `Bird - Sandhill
# Crane/`), so the group is its name, not its folder: copies never straddle a split. Frogs (2
# recordings) and the single recordings (thunder, fire, snowmobile, wagon, lake ice, soundscape)
# make no class of enough recordings for 5 grouped folds, and are left out.
YSL_CLASSES = {
    "bird": "american dipper, american robin, bald eagle, bird chorus, canada goose, clark's nutcracker, "
            "common loon, common raven, common yellowthroat, dawn chorus, killdeer, mountain bluebird, "
            "red-winged blackbird, ruffed grouse, sandhill crane, savannah sparrow, townsend's solitaire, "
            "warbling vireos, western meadow lark, wilson's snipe, american coots",
    "mammal": "bison, bison eating, coyote, red fox, red squirrel, uinta ground squirrel, wolves, elk",
    "geyser": "anemone geysers, beehive geyser, castle geyser, cliff geyser, grand geyser, old faithful, "
              "puff 'n stuff geyser, sawmill geyser, spouter geyser, veteran geyser, vixen geyser",
    "hot_spring": "beryl spring, black sand pool, ear spring, scissors springs, artist paint pots, "
                  "fountain paint pot, black growler steam vent, fumaroles, hurricane vent, the dragon's mouth",
}
_YSL_LABEL = {name: label for label, names in YSL_CLASSES.items() for name in names.split(", ")}


def ysl_label(rel: str):
    """YSL ``<folder>/[Sound Library - ]<name>.mp3``: label = the category of <name>, group = <name>."""
    name = Path(rel).stem.replace("Sound Library - ", "").replace("\u2019", "'").lower().strip()
    return (_YSL_LABEL[name], name) if name in _YSL_LABEL else None


LABELLERS = {"openclonk": openclonk_label, "dspspeech20": dspspeech_label, "ysl": ysl_label}
