"""Synthetic speech: English words spoken by espeak-ng in seeded random voices, speeds and pitches."""
from __future__ import annotations

import os
import subprocess
from typing import List, Sequence

import numpy as np

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
