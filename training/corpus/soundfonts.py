"""General MIDI soundfonts rendered note by note with fluidsynth: every (program, pitch, velocity) a
3-s clip (a 2-s note and its release), tagged with the instrument, its family, register and dynamics."""
from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Iterable, List, Sequence, Tuple

import numpy as np
import soundfile as sf

from training.corpus import sourcetags
from training.corpus.clips import MIN_CLIP_S, SR, decode, is_silent, pool_map, resample

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
    for res in pool_map(_render_chunk, jobs, workers):
        out.extend(res)
    return out
