"""Fast tests for training/tags.py and the apt-independent part of training/corpus.py."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from training import tags as T
from training import corpus as C


# ----------------------------------------------------------------------------- tags.py

def test_tokenize_splits_paths_camel_and_digits():
    toks = T.tokenize("usr/share/Sounds/bigExplosion_2-metal.ogg")
    assert toks == ["usr", "share", "sounds", "big", "explosion", "metal", "ogg"]


def test_clean_words_stopwords_short_and_useless():
    out = T.clean_words(["The dog and a cat", "x 42 usr/share/sfx/data/wav sound"])
    assert out == ["dog", "cat"]


def test_clean_words_singular_and_dedup():
    out = T.clean_words(["Explosions explosion wolves drums", "bass glass bus cymbals"])
    assert out == ["explosion", "wolf", "drum", "bass", "glass", "bus", "cymbal"]


def test_clean_words_extra_stop():
    assert T.clean_words(["hedgewars pirate"], extra_stop={"hedgewars"}) == ["pirate"]


def test_build_vocab_frequency_filters():
    n = 100
    lists = []
    for i in range(n):
        t = ["everywhere"]              # in 100% -> dropped (>70%)
        if i < 70:
            t.append("common")          # in exactly 70% -> kept
        if i < 10:
            t.append("tenfold")         # in 10 sounds -> kept
        if i < 9:
            t.append("rare")            # in 9 -> dropped
        lists.append(t + t)             # duplicates inside a sound count once
    vocab = T.build_vocab(lists)
    assert vocab == ["common", "tenfold"]


def test_build_vocab_cap_and_order():
    # 1200 tags, tag k appears in 10 + k sounds
    lists = [[] for _ in range(3000)]
    for k in range(1200):
        for j in range(10 + k):
            lists[(k * 7 + j) % 3000].append(f"t{k}")
    vocab = T.build_vocab(lists, max_tags=1000)
    assert len(vocab) == 1000
    assert vocab[0] == "t1199" and vocab[-1] == "t200"


def test_filter_tags_drops_untagged_sounds():
    lists = [["a"]] * 10 + [["b"]] * 5 + [["a", "b"]] + [["c"]] * 20
    vocab, idx, tags = T.filter_tags(lists, min_count=10, max_frac=0.7)
    assert set(vocab) == {"a", "c"}
    assert len(idx) == 31 and all(t for t in tags)
    assert tags[10] == ["a"]           # the a+b sound keeps a only
    assert 10 not in idx[:10]          # b-only sounds (indices 10..14) dropped


# ----------------------------------------------------------------------------- corpus.py

def _tone(sr, seconds, channels=1, amp=0.5, f=440.0):
    t = np.arange(int(sr * seconds)) / sr
    y = amp * np.sin(2 * np.pi * f * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.fixture
def fake_pkg(tmp_path):
    root = tmp_path / "pkg"
    d = root / "usr/share/games/fakegame/data/sounds/animals"
    d.mkdir(parents=True)
    sf.write(d / "dogBarking_01.wav", _tone(44100, 1.5, channels=2), 44100)
    sf.write(d / "catMeows.flac", _tone(16000, 0.5), 16000)
    sf.write(d / "silence.wav", np.zeros(22050), 22050)
    sf.write(d / "tiny.wav", _tone(22050, 0.05), 22050)
    m = root / "usr/share/games/fakegame/music"
    m.mkdir(parents=True)
    sf.write(m / "longTrack.ogg", _tone(8000, 31.0, channels=2, amp=0.3), 8000)
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "usr/share/doc/readme.txt").write_text("not audio")
    return root


def test_build_clips_and_manifest(fake_pkg, tmp_path):
    out = tmp_path / "out"
    recs = C.build_clips(str(fake_pkg), "fakegame", str(out), theme=["cartoon"], workers=1,
                         log=lambda m: None)
    by_src = {}
    for r in recs:
        by_src.setdefault(os.path.basename(r["source_file"]), []).append(r)
    # silent and too-short files dropped, non-audio ignored
    assert set(by_src) == {"dogBarking_01.wav", "catMeows.flac", "longTrack.ogg"}
    # 31 s -> three 10-s segments (1-s tail beyond 30 s ignored)
    assert len(by_src["longTrack.ogg"]) == 3
    for r in recs:
        y, sr = sf.read(out / r["path"])
        assert sr == C.SR == 22000 and y.ndim == 1
        assert r["path"].endswith(".flac") and r["path"].startswith("audio/fakegame/")
        assert sf.info(out / r["path"]).subtype == "PCM_16"
        assert abs(len(y) / sr - r["duration"]) < 1e-3
        assert len(y) <= 10 * sr
    assert [r["duration"] for r in by_src["longTrack.ogg"]] == [10.0, 10.0, 10.0]
    assert abs(by_src["dogBarking_01.wav"][0]["duration"] - 1.5) < 1e-3
    assert abs(by_src["catMeows.flac"][0]["duration"] - 0.5) < 1e-3
    dog = by_src["dogBarking_01.wav"][0]
    assert dog["raw_tags"] == ["animal", "dog", "barking", "cartoon"]
    assert "fakegame" not in dog["raw_tags"]
    assert by_src["longTrack.ogg"][0]["raw_tags"] == ["music", "long", "cartoon"]  # "track" is a useless word
    assert dog["source_file"] == "/usr/share/games/fakegame/data/sounds/animals/dogBarking_01.wav"

    vocab, kept = C.finalize(recs, str(out), min_count=1, max_frac=0.7)
    assert "cartoon" not in vocab          # in every sound -> dropped
    lines = [json.loads(l) for l in open(out / "manifest.jsonl")]
    assert len(lines) == len(kept) == 5
    assert set(lines[0]) == {"path", "tags", "package", "source_file", "duration"}
    assert json.load(open(out / "vocab.json")) == vocab
    assert vocab[:2] == ["long", "music"]  # most frequent first (3 clips each), ties alphabetical


def test_tuxpaint_spoken_descriptions_carry_no_language(tmp_path):
    # one voice reads each language, so a language tag would name the speaker
    d = tmp_path / "stamps/animals/birds"
    d.mkdir(parents=True)
    (d / "rooster.txt").write_text("A rooster crowing.\nfr.utf8=Un coq qui chante.\n")
    for rel in ["stamps/animals/birds/rooster_desc.ogg", "stamps/animals/birds/rooster_desc_fr.ogg",
                "stamps/animals/birds/rooster_desc_ja.ogg"]:
        assert C.tuxpaint_tags(str(tmp_path), rel) == ["speech", "voice", "spoken", "description"]
    sound = C.tuxpaint_tags(str(tmp_path), "stamps/animals/birds/rooster.ogg")
    assert sound == ["stamps", "animals", "birds", "rooster", "A rooster crowing."]


def test_resample_and_segments():
    y = _tone(44100, 25.0).astype(np.float32)
    z = C.resample(y, 44100)
    assert abs(len(z) - 25 * 22000) <= 2
    segs = C.segments(z)
    assert [len(s) for s in segs] == [220000, 220000, len(z) - 440000]
    assert C.segments(np.zeros(22000, np.float32)) == []
    assert C.segments(np.full(1000, 0.5, np.float32)) == []   # < 0.1 s


def test_note_tags_and_midi(tmp_path):
    raw = T.clean_words(C.note_tags(0, 36, 50))
    assert raw == ["acoustic", "grand", "piano", "low", "soft", "note", "instrument"]
    assert C.gm_family(127) == "sound effects" and C.gm_family(40) == "strings"
    assert T.clean_words(C.note_tags(73, 84, 110)) == ["flute", "pipe", "high", "loud", "note", "instrument"]
    p = tmp_path / "x.mid"
    C.write_midi(str(p), [(0, 60, 100), (40, 72, 50)])
    import mido
    mid = mido.MidiFile(str(p))
    assert abs(mid.length - 2 * C.SLOT_S) < 0.01
