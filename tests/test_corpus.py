"""Fast tests for training/tags.py and the apt-independent part of training/corpus.py (GitHub
sources from tiny git repositories made here, so no network is needed)."""
import csv
import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
import soundfile as sf

from training.corpus import build, clips, github, manifest, soundfonts
from training.corpus import domains as D
from training.corpus import sourcetags as ST
from training.corpus import tags as T
from training.evaluation import datasets as eval_datasets


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
    recs = clips.build_clips(str(fake_pkg), "fakegame", str(out), theme=["cartoon"], workers=1,
                         log=lambda m: None)
    by_src = {}
    for r in recs:
        by_src.setdefault(os.path.basename(r["source_file"]), []).append(r)
    # silent and too-short files dropped, non-audio ignored
    assert set(by_src) == {"dogBarking_01.wav", "catMeows.flac", "longTrack.ogg"}
    # 31 s -> three 10-s segments and the 1-s tail (MIN_TAIL_S), consecutive: under MAX_SEGS
    assert len(by_src["longTrack.ogg"]) == 4
    for r in recs:
        y, sr = sf.read(out / r["path"])
        assert sr == clips.SR == 22000 and y.ndim == 1
        assert r["path"].endswith(".flac") and r["path"].startswith("audio/fakegame/")
        assert sf.info(out / r["path"]).subtype == "PCM_16"
        assert abs(len(y) / sr - r["duration"]) < 1e-3
        assert len(y) <= 10 * sr
    assert [r["duration"] for r in by_src["longTrack.ogg"]] == [10.0, 10.0, 10.0, 1.0]
    assert abs(by_src["dogBarking_01.wav"][0]["duration"] - 1.5) < 1e-3
    assert abs(by_src["catMeows.flac"][0]["duration"] - 0.5) < 1e-3
    dog = by_src["dogBarking_01.wav"][0]
    assert dog["raw_tags"] == ["animal", "dog", "barking", "cartoon"]
    assert "fakegame" not in dog["raw_tags"]
    assert by_src["longTrack.ogg"][0]["raw_tags"] == ["music", "long", "cartoon"]  # "track" is a useless word
    assert dog["source_file"] == "/usr/share/games/fakegame/data/sounds/animals/dogBarking_01.wav"

    vocab, kept = manifest.finalize(recs, str(out), min_count=1, max_frac=0.7)
    assert "cartoon" not in vocab          # in every sound -> dropped
    lines = [json.loads(l) for l in open(out / "manifest.jsonl")]
    assert len(lines) == len(kept) == 6
    assert set(lines[0]) == {"path", "tags", "source", "source_file", "duration", "domain"}
    assert json.load(open(out / "vocab.json")) == vocab
    assert vocab[:2] == ["long", "music"]  # most frequent first (4 clips each), ties alphabetical


def test_one_sound_in_two_formats_gives_one_clip(tmp_path):
    d = tmp_path / "pkg" / "sounds"
    d.mkdir(parents=True)
    sf.write(d / "mace.ogg", _tone(22050, 1.0), 22050)
    sf.write(d / "mace.wav", _tone(22050, 0.7, f=880), 22050)  # both would be written to audio/game/sounds/mace.flac
    logged = []
    recs = clips.build_clips(str(tmp_path / "pkg"), "game", str(tmp_path / "out"), workers=2, log=logged.append)
    assert [(r["path"], r["source_file"], r["duration"]) for r in recs] == [("audio/game/sounds/mace.flac", "/sounds/mace.ogg", 1.0)]
    assert len(sf.read(tmp_path / "out" / recs[0]["path"])[0]) == 22000  # the clip on disk is the one listed
    assert "1 left out" in logged[-1]
    n = clips.write_heldout(str(tmp_path / "pkg"), "set", str(tmp_path / "out"), lambda rel: ("mace", rel),
                            ["sounds/mace.ogg", "sounds/mace.wav"], workers=1, log=lambda m: None)
    assert n == 1


def test_tuxpaint_spoken_descriptions_carry_no_language(tmp_path):
    # one voice reads each language, so a language tag would name the speaker
    d = tmp_path / "stamps/animals/birds"
    d.mkdir(parents=True)
    (d / "rooster.txt").write_text("A rooster crowing.\nfr.utf8=Un coq qui chante.\n")
    for rel in ["stamps/animals/birds/rooster_desc.ogg", "stamps/animals/birds/rooster_desc_fr.ogg",
                "stamps/animals/birds/rooster_desc_ja.ogg"]:
        assert ST.tuxpaint_tags(str(tmp_path), rel) == ["speech", "voice", "spoken", "description"]
    sound = ST.tuxpaint_tags(str(tmp_path), "stamps/animals/birds/rooster.ogg")
    assert sound == ["stamps", "animals", "birds", "rooster", "A rooster crowing."]


def test_resample_and_segments():
    y = _tone(44100, 25.0).astype(np.float32)
    z = clips.resample(y, 44100)
    assert abs(len(z) - 25 * 22000) <= 2
    segs = clips.segments(z)
    assert [len(s) for s in segs] == [220000, 220000, len(z) - 440000]
    assert clips.segments(np.zeros(22000, np.float32)) == []
    assert clips.segments(np.full(1000, 0.5, np.float32)) == []   # < 0.1 s


def test_long_file_clips_spread_over_the_file():
    sr = 1000
    y = np.arange(95 * sr, dtype=np.float32) / (95 * sr) + 0.01  # value = position in the file
    segs = clips.segments(y, sr, max_segs=4)
    assert [len(s) for s in segs] == [10 * sr] * 4
    starts = [round(float(s[0] - 0.01) * 95) for s in segs]
    assert starts == [0, 28, 57, 85]                            # first to last 10 s, evenly
    assert len(clips.segments(y, sr, max_segs=10)) == 10             # 9 full + 5-s tail: consecutive
    assert len(clips.segments(y[:15 * sr], sr, max_segs=1)) == 1


def test_note_tags_and_midi(tmp_path):
    raw = T.clean_words(soundfonts.note_tags(0, 36, 50))
    assert raw == ["acoustic", "grand", "piano", "low", "soft", "note", "instrument"]
    assert soundfonts.gm_family(127) == "sound effects" and soundfonts.gm_family(40) == "strings"
    assert T.clean_words(soundfonts.note_tags(73, 84, 110)) == ["flute", "pipe", "high", "loud", "note", "instrument"]
    p = tmp_path / "x.mid"
    soundfonts.write_midi(str(p), [(0, 60, 100), (40, 72, 50)])
    import mido
    mid = mido.MidiFile(str(p))
    assert abs(mid.length - 2 * soundfonts.SLOT_S) < 0.01


# ----------------------------------------------------------------------------- taggers, domains

def test_gcompris_tags_english_key_and_speech_not_language():
    clean = lambda rel: T.clean_words(ST.gcompris_tags("", rel))
    assert clean("fr/words/fish.ogg") == clean("de/words/fish.ogg") == ["speech", "word", "fish"]
    assert clean("ro/alphabet/U0033.ogg") == ["speech", "three", "number"]
    assert clean("en/alphabet/15.ogg") == ["speech", "fifteen", "number"]
    assert clean("el/alphabet/U03B1.ogg") == ["speech", "letter"]
    assert clean("pt_BR/geography/new_zealand.ogg") == ["speech", "word", "place", "zealand"]
    assert clean("en/intro/readingv.ogg") == ["speech", "instruction"]
    assert ST.gcompris_tags("", "LICENSE.ogg") is None


def test_asterisk_and_body_percussion_codes():
    rel = "usr/share/asterisk/sounds/es_MX_f_Allison/digits/16.wav"
    assert T.clean_words(ST.asterisk_tags("", rel)) == ["speech", "telephone", "digit", "sixteen"]
    rel = "usr/share/asterisk/sounds/fr_FR_f_Sylvie/vm-goodbye.wav"
    assert T.clean_words(ST.asterisk_tags("", rel)) == ["speech", "telephone", "vm", "goodbye"]
    assert T.clean_words(ST.body_percussion_tags("", "Samples/body/handclap_vl1_rr1.wav")) == \
        ["body", "percussion", "hand", "clap"]
    assert T.clean_words(ST.body_percussion_tags("", "Samples/body/cheek_lin_rr4.wav")) == \
        ["body", "percussion", "cheek"]


def test_piano_tags():
    assert T.clean_words(ST.piano_tags("", "Samples/PP C#1.flac")) == ["acoustic", "grand", "piano", "soft", "low"]
    assert T.clean_words(ST.piano_tags("", "Samples/Mf G6.flac")) == ["acoustic", "grand", "piano", "loud", "high"]
    assert ST.piano_tags("", "Samples/readme.flac") is None


def test_sample_library_tags():
    samples, sax, drums = ST.TAGGERS["samples"], ST.TAGGERS["solosax"], ST.TAGGERS["drums"]
    assert T.clean_words(samples("", "Samples/f/a3_f_rr2.wav")) == ["loud", "mid"]
    assert T.clean_words(samples("", "CP80/Samples/027-D#1-FF.flac")) == ["low", "loud"]
    assert T.clean_words(samples("", "Wurlitzer EP200/Samples/gb4mp.flac")) == ["mid", "soft"]
    assert T.clean_words(samples("", "Samples/HEADROOM PIANO LEVEL5 CLOSE 99.flac")) == ["loud", "high"]
    assert T.clean_words(samples("", "Samples/a0_s_vl1_rr1_dyn.wav")) == ["low", "staccato"]
    assert T.clean_words(samples("", "Samples/pizz/c2_vl1_rr5.wav")) == ["pizzicato", "low"]
    # the saxophones' numbers are take indices, not MIDI notes; b and k are breath and key noise
    assert T.clean_words(sax("", "MTG Solo Saxophones/Samples/ten_p_33.flac")) == ["tenor", "soft"]
    assert T.clean_words(sax("", "MTG Solo Saxophones/Samples/alt_k_02.flac")) == ["alto", "key", "click"]
    assert T.clean_words(drums("", "Samples/front_mic/ho_vl1_rr2.wav")) == ["hi", "hat", "open"]
    assert T.clean_words(drums("", "Samples/oh_mic/ks_vl3_rr1.wav")) == ["kick"]


def test_package_stop_words_keep_a_repository_name():
    assert clips.package_stop_words("hedgewars-data") == {"hedgewars", "data"}
    assert clips.package_stop_words("github:sfzinstruments/SplendidGrandPiano") == {"github", "sfzinstruments"}


def test_heldout_labellers():
    assert ST.openclonk_label("planet/Sound.ocg/Animals.ocg/Bat.ocg/Flutter2.wav") == \
        ("Animals", "Animals/Bat/Flutter")
    assert ST.openclonk_label("planet/Sound.ocg/Clonk.ocg/Skin.ocg/Farmer.ocg/Hurt1.ogg")[0] == "ClonkVoice"
    assert ST.openclonk_label("planet/Sound.ocg/UI.ocg/Click.ogg") is None
    assert ST.openclonk_label("planet/Music.ocg/Song.ogg") is None
    assert ST.dspspeech_label("speech_data/15307/15307-12-05.wav") == ("speech", "15307")
    assert ST.dspspeech_label("speech_data/15307/15307-12-06.wav") is None  # takes beyond the 5th


def test_domains():
    assert D.domain(["speech", "word", "dog"]) == "speech"
    assert D.domain(["dog", "bark"]) == "animals"
    assert D.domain(["rain", "thunder", "door"]) == "nature"
    assert D.domain(["piano", "note", "instrument", "low"]) == "rendered notes"
    assert D.domain(["laser", "scifi"]) == D.OTHER
    assert D.is_real_world(["footstep", "gravel"]) and not D.is_real_world(["speech", "dog"])


# ----------------------------------------------------------------------------- GitHub sources

def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def snapshots(tmp_path):
    """Two tiny repositories under snapshots/: a clone-like one (owner+name/repo/.git) with a
    game archive, and a bare one (owner/name.git) whose files become a held-out set."""
    snaps = tmp_path / "snapshots"
    fx = snaps / "acme+foley" / "repo"
    (fx / "sounds/Animals/Dog").mkdir(parents=True)
    sf.write(fx / "sounds/Animals/Dog/barkLoud1.wav", _tone(16000, 1.0), 16000)
    sf.write(fx / "sounds/Animals/Dog/barkLoud2.wav", _tone(16000, 0.8, f=300), 16000)
    (fx / "sounds/Weather").mkdir(parents=True)
    sf.write(fx / "sounds/Weather/rainStorm.ogg", _tone(8000, 65.0, amp=0.2), 8000)
    (fx / "music").mkdir()
    sf.write(fx / "music/theme.ogg", _tone(8000, 2.0), 8000)
    sf.write(fx / "rattle.wav", _tone(8000, 0.5), 8000)
    with zipfile.ZipFile(fx / "effects.pk3", "w") as z:
        z.write(fx / "rattle.wav", "sound/tools/drill.wav")
    os.remove(fx / "rattle.wav")
    (fx / "LICENSE").write_text("CC0 1.0 Universal\n")
    _git(fx, "init", "-q")
    _git(fx, "add", ".")
    _git(fx, "commit", "-q", "-m", "one")
    first = _git(fx, "rev-parse", "HEAD")
    sf.write(fx / "sounds/Animals/Dog/growl.wav", _tone(16000, 1.0, f=100), 16000)
    _git(fx, "add", ".")
    _git(fx, "commit", "-q", "-m", "two: not pinned")

    work = tmp_path / "speechwork"
    for spk in ("1101", "1202"):
        for w in ("11", "12"):
            d = work / "speech_data" / spk
            d.mkdir(parents=True, exist_ok=True)
            for take in ("01", "02"):
                sf.write(d / f"{spk}-{w}-{take}.wav", _tone(16000, 0.6, f=200 + 50 * int(w)), 16000)
    _git(work, "init", "-q")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "speech")
    speech = _git(work, "rev-parse", "HEAD")
    (snaps / "acme").mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(snaps / "acme" / "speech.git")], check=True)
    return snaps, first, speech


def _sources_csv(path, rows):
    cols = ["package", "version", "licence", "kind", "role", "tagger", "theme", "stop", "paths", "max_clips",
            "tags_from"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def test_github_sources_build_heldout_and_evaluate_finds_them(snapshots, tmp_path, capsys, monkeypatch):
    snaps, first, speech = snapshots
    src = _sources_csv(tmp_path / "sources.csv", [
        {"package": "github:acme/foley", "version": first, "licence": "CC0-1.0", "kind": "effects",
         "paths": "^(sounds|effects)", "max_clips": "4", "theme": "foley"},
        {"package": "github:acme/speech", "version": speech, "licence": "MIT", "kind": "speech",
         "role": "heldout", "tagger": "dspspeech20"},
        {"package": "github:acme/absent", "version": "0" * 40, "kind": "effects"},
    ])
    out, cache = tmp_path / "out", tmp_path / "cache"
    build.main(["--out", str(out), "--cache", str(cache), "--snapshots", str(snaps), "--sources-csv", str(src),
            "--workers", "1", "--min-tag-count", "1", "--max-source-share", "1"])
    printed = capsys.readouterr().out
    recs = [json.loads(l) for l in open(out / "manifest.jsonl")]
    by_file = {}
    for r in recs:
        by_file.setdefault(r["source_file"], []).append(r)
    # the pinned commit, not the later one; music/ left out by the paths pattern; pk3 unpacked
    assert set(by_file) == {"/sounds/Animals/Dog/barkLoud1.wav", "/sounds/Animals/Dog/barkLoud2.wav",
                            "/sounds/Weather/rainStorm.ogg", "/effects_zip/sound/tools/drill.wav"}
    assert len(by_file["/sounds/Weather/rainStorm.ogg"]) == 4      # 65 s -> 4 clips spread over it
    r = by_file["/sounds/Animals/Dog/barkLoud1.wav"][0]
    assert r["source"] == "github:acme/foley" and r["version"] == first and r["licence"] == "CC0-1.0"
    assert r["tags"] == ["animal", "dog", "bark", "loud"] and r["domain"] == "animals"
    assert "foley" not in json.load(open(out / "vocab.json"))   # the theme is on every clip (> 70%)
    info = json.load(open(out / "sources.json"))
    assert "github:acme/absent" in info["failed"] and info["heldout"] == {"dspspeech20": 8}
    assert "| github:acme/foley | 7 | 100.0 |" in printed and "| animals | 2 |" in printed
    # the held-out set, in the ../shared/data layout: one clip per file, grouped by speaker
    hd = out / "heldout" / "dspspeech20"
    rows = list(csv.DictReader(open(hd / "labels.csv")))
    assert len(rows) == 8 and {r["label"] for r in rows} == {"fandian", "speech"}
    assert {r["group"] for r in rows} == {"1101", "1202"}
    assert all((hd / r["file"]).is_file() and r["file"].endswith(".flac") for r in rows)
    assert not any("speech_data" in r["source_file"] for r in recs)   # never in training

    # training.evaluate picks the held-out sets up from the environment, beside its defaults
    monkeypatch.setenv(eval_datasets.EVAL_DATA_ENV, str(out / "heldout"))
    paths = eval_datasets.data_paths([tmp_path / "elsewhere"], os.environ[eval_datasets.EVAL_DATA_ENV])
    assert paths == [tmp_path / "elsewhere", hd]
    datasets, _ = eval_datasets.find_datasets(paths, announce=lambda m: None)
    assert [d.name for d in datasets] == ["dspspeech20"] and len(datasets[0].files) == 8
    assert sorted(set(datasets[0].groups)) == ["1101", "1202"]

    # --update rebuilds the named sources and keeps the other clips of the last build
    build.main(["--out", str(out), "--cache", str(cache), "--snapshots", str(snaps), "--sources-csv", str(src),
            "--workers", "1", "--min-tag-count", "1", "--max-source-share", "1", "--update",
            "--sources", "github:acme/speech"])
    again = [json.loads(l) for l in open(out / "manifest.jsonl")]
    assert again == recs and json.load(open(out / "sources.json"))["heldout"] == {"dspspeech20": 8}

    # --sources builds a subset; an unknown name is an error
    out2 = tmp_path / "out2"
    build.main(["--out", str(out2), "--cache", str(cache), "--snapshots", str(snaps), "--sources-csv", str(src),
            "--workers", "1", "--sources", "github:acme/speech"])
    assert not (out2 / "manifest.jsonl").read_text() and (out2 / "heldout/dspspeech20/labels.csv").exists()
    with pytest.raises(SystemExit, match="nosuch"):
        build.main(["--out", str(out2), "--sources-csv", str(src), "--sources", "nosuch"])


def test_export_snapshot_reports_missing_commit(snapshots, tmp_path):
    snaps, first, _ = snapshots
    gd = github.snapshot_git_dir(str(snaps), "acme/foley")
    with pytest.raises(RuntimeError, match="not in"):
        github.export_snapshot(gd, "1" * 40, str(tmp_path / "x"))
    with pytest.raises(RuntimeError, match="no git snapshot"):
        github.snapshot_git_dir(str(snaps), "acme/nothing")


def test_cap_source_share():
    recs = [{"source": "big", "i": i} for i in range(90)] + [{"source": "small", "i": i} for i in range(30)]
    kept = manifest.cap_source_share(recs, 0.5)
    assert sum(r["source"] == "big" for r in kept) == 30 and sum(r["source"] == "small" for r in kept) == 30
    assert [r["i"] for r in kept if r["source"] == "big"] == sorted(r["i"] for r in kept if r["source"] == "big")
    assert manifest.cap_source_share(recs, 0.8) == recs


def test_min_count_counts_source_files_not_clips():
    # one long recording cut into 30 clips all carrying its title word: no tag; the same word
    # in 10 different recordings: a tag
    lists = [["music", "celtica"]] * 30 + [["music", "river"]] * 10 + [["dog"]] * 40
    groups = ["celtica.ogg"] * 30 + [f"river{i}.ogg" for i in range(10)] + [f"dog{i}" for i in range(40)]
    assert "celtica" in T.build_vocab(lists)
    vocab = T.build_vocab(lists, groups=groups)
    assert "celtica" not in vocab and {"music", "river", "dog"} <= set(vocab)


def test_source_cap_holds_after_untagged_clips_are_dropped(tmp_path):
    # "big" has 60 tagged clips; "small" has 40 clips of which 20 carry a tag too rare to keep, so
    # capping before finalize alone would leave big over half of the final corpus
    recs = [{"path": f"b{i}", "raw_tags": ["word"], "source": "big", "source_file": f"b{i}", "duration": 1.0}
            for i in range(60)]
    recs += [{"path": f"s{i}", "raw_tags": ["dog"] if i < 20 else [f"rare{i}"], "source": "small",
              "source_file": f"s{i}", "duration": 1.0} for i in range(40)]
    _, once = manifest.finalize(manifest.cap_source_share(recs, 0.5), str(tmp_path / "once"))
    assert sum(r["source"] == "big" for r in once) > 0.5 * len(once)
    vocab, kept = manifest.capped_and_final(recs, str(tmp_path / "fixed"), 0.5)
    n_big = sum(r["source"] == "big" for r in kept)
    assert n_big <= 0.5 * len(kept) and n_big == 20 and len(kept) == 40
    assert set(vocab) == {"word", "dog"}


def test_ysl_labels_by_category_and_groups_copies_of_a_recording():
    assert ST.ysl_label("Bird - Sandhill Crane/Sound Library - Sandhill Crane.mp3") == ("bird", "sandhill crane")
    assert ST.ysl_label("Crane (sandhill)/Sound Library - Sandhill Crane.mp3") == ("bird", "sandhill crane")
    assert ST.ysl_label("Bird - Clark's Nutcracker/Sound Library - Clark\u2019s Nutcracker.mp3")[0] == "bird"
    assert ST.ysl_label("Fumaroles/Sound Library - Fumaroles.mp3") == ("hot_spring", "fumaroles")
    assert ST.ysl_label("Thunder/Sound Library - Thunder.mp3") is None  # one recording is no class


def test_sanctsound_one_file_per_recording_no_speed_altered_copies(tmp_path):
    names = ["SanctSound_CI02_05_humpbackwhale_20201014T134715Z.wav",
             "SanctSound_CI02_05_humpbackwhale_20201014T134715Z_28dBgain.wav",
             "SanctSound_CI02_05_sealionbark_20200613T042112Z.wav",
             "SanctSound_CI02_05_unknownpinnipedbark_20200613T042112Z.wav",
             "SanctSound_CI05_04_finwhale_20191228T134133Z_6xSpeed.wav",
             "SanctSound_CI02_03_wind_20191026T155434Z.wav"]
    (tmp_path / "files").mkdir()
    for n in names:
        (tmp_path / "files" / n).touch()
    tags = {n: ST.sanctsound_tags(str(tmp_path), f"files/{n}") for n in names}
    assert tags == {names[0]: ["underwater", "humpback whale"], names[1]: None,
                    names[2]: ["underwater", "sea lion bark", "seal bark"], names[3]: None,
                    names[4]: None, names[5]: None}
