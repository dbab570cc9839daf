"""Acoustic-domain renditions in training.prepare (training/corpus/augment_wave.py)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from training.corpus import augment_wave as aw
from training.corpus import prepare

FS = 22000
ALL = dict(room=True, background=True, mic=True, codec=True, pitch_speed=True)
# sha256 of the files `prepare(corpus, out, workers=1)` wrote for the corpus below before renditions
# existed (training/corpus/prepare.py at dc5c00e): every option off must keep them, byte for byte
BEFORE = {
    "train_patches.npy": "18a482c1c1d2fbdafea6dcd361cdc4ce05b30c30229e1e6bb90e3a00a22974a1",
    "train_tags.npy": "81ca6bc9889b126b1a582cdb1c02c2f099ca87d6e41591c8c8da31cfcff40b02",
    "val_patches.npy": "1163f15ec71fbe04283de2caccd7a8c6d3dc88b23b64d45b783fc96482a1eb89",
    "val_tags.npy": "78a2eee69edbc894d3b7cf6d84ec6a7c98b72077acb2a91ea6bbf62a34b50a9c",
}


def _tone(seconds, freq, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * FS)) / FS)).astype(np.float32)


def make_corpus(root):
    """24 short clips: tones, spoken-tagged tones, rain (noise) and clicks."""
    rng = np.random.default_rng(0)
    kinds = {"tone": ["tone"], "speech": ["speech", "voice"], "rain": ["rain", "ambience"], "click": ["click"]}
    rows = []
    for i in range(24):
        kind = list(kinds)[i % 4]
        n = int(FS * rng.uniform(0.5, 2.5))
        if kind in ("tone", "speech"):
            y = _tone(n / FS, rng.uniform(200, 2000))
        elif kind == "rain":
            y = 0.1 * rng.standard_normal(n)
        else:
            y = np.zeros(n)
            y[:: FS // 8] = 0.9
        path = root / "audio" / f"{kind}_{i}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, y, FS)
        rows.append({"path": f"audio/{path.name}", "tags": kinds[kind]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "vocab.json").write_text(json.dumps(["tone", "speech", "voice", "rain", "ambience", "click"]))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("aug_corpus"))


@pytest.fixture(scope="module")
def plain(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    prepare.prepare(corpus, out, workers=1)
    return out


@pytest.fixture(scope="module")
def augmented(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("augmented")
    prepare.prepare(corpus, out, workers=2, augment=aw.WaveAugment(**ALL, renditions=2, seed=3))
    return out


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_all_off_keeps_the_output_bit_identical(plain):
    assert {name: _sha(plain / name) for name in BEFORE} == BEFORE
    meta = json.loads((plain / "meta.json").read_text())
    assert meta["augmentation"] is None and not (plain / "augmentations.jsonl").exists()
    with pytest.raises(SystemExit):  # a stage without renditions would silently do nothing
        prepare.main(["--corpus", "x", "--out", "y", "--aug-room"])


def test_renditions_follow_the_clean_patches_with_their_clips_tags_and_leave_validation_alone(plain, augmented):
    meta = json.loads((augmented / "meta.json").read_text())["augmentation"]
    assert meta["renditions"] == 2 and meta["seed"] == 3 and meta["room"] and meta["snr_db"] == [0.0, 20.0]
    for name in ("val_patches.npy", "val_tags.npy"):
        assert _sha(augmented / name) == _sha(plain / name)
    n = meta["train_clean_patches"]
    clean_patches, clean_tags = np.load(plain / "train_patches.npy"), np.load(plain / "train_tags.npy")
    patches, tags = np.load(augmented / "train_patches.npy"), np.load(augmented / "train_tags.npy")
    assert n == len(clean_patches) and len(patches) == n + meta["augmented_patches"] > n
    np.testing.assert_array_equal(patches[:n], clean_patches)  # the same scaler: the clean scaler
    records = [json.loads(line) for line in (augmented / "augmentations.jsonl").read_text().splitlines()]
    # one patch per clip here, so rendition rows follow the clean rows' clips in order
    train_clips = list(dict.fromkeys(r["clip"] for r in records))
    assert len(train_clips) == n  # every training clip, and no validation clip, got renditions
    clip_tags = dict(zip(train_clips, clean_tags))
    for record, row in zip(records, tags[n:]):
        np.testing.assert_array_equal(row, clip_tags[record["clip"]])
        stages = [next(iter(s)) for s in record["chain"]]
        assert stages and stages == [s for s in aw.STAGES if s in stages]
        assert not ("speech" in record["clip"] and "pitch_speed" in stages)
        for s in record["chain"]:  # backgrounds come from training clips of other tags
            name = s.get("background", {}).get("ambience")
            assert name is None or (name in train_clips and "rain" in name and "rain" not in record["clip"])
    for j, record in enumerate(records):  # each rendition's patch differs from its clip's clean one
        assert not np.array_equal(patches[n + j], clean_patches[train_clips.index(record["clip"])])


def test_renditions_are_reproducible_whatever_the_workers(corpus, augmented, tmp_path):
    again = tmp_path / "again"
    prepare.prepare(corpus, again, workers=1, augment=aw.WaveAugment(**ALL, renditions=2, seed=3))
    for name in ("train_patches.npy", "train_tags.npy", "augmentations.jsonl"):
        assert _sha(again / name) == _sha(augmented / name)
    y = _tone(1.0, 500)
    aug = aw.WaveAugment(**ALL, renditions=2)
    first = aw.render(y, FS, ["tone"], aug, "a.wav", 1)[0]
    np.testing.assert_array_equal(first, aw.render(y, FS, ["tone"], aug, "a.wav", 1)[0])
    for other in (aw.render(y, FS, ["tone"], aug, "a.wav", 0)[0], aw.render(y, FS, ["tone"], aug, "b.wav", 1)[0],
                  aw.render(y, FS, ["tone"], aw.WaveAugment(**ALL, renditions=2, seed=1), "a.wav", 1)[0]):
        assert len(other) != len(first) or not np.array_equal(other, first)


def test_background_mix_lies_within_the_snr_range_and_avoids_the_clips_tags():
    aug = aw.WaveAugment(background=True, renditions=1, snr_db=(5.0, 12.0))
    y = _tone(1.0, 300)
    rain = np.random.default_rng(1).standard_normal(FS // 3).astype(np.float32)  # shorter: looped
    pool = [("rain.wav", ("rain",)), ("wind.wav", ("wind", "tone"))]
    pick = aw.ambience_picker(pool, ["tone"], lambda name: rain)
    snrs = []
    for seed in range(20):
        z, drawn = aw.background(y, FS, np.random.default_rng(seed), aug, pick)
        assert drawn["ambience"] == "rain.wav"  # the wind clip shares "tone"
        snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((z.astype(np.float64) - y) ** 2))
        assert snr == pytest.approx(drawn["snr_db"], abs=0.01) and 5.0 <= drawn["snr_db"] <= 12.0
        snrs.append(snr)
    assert max(snrs) - min(snrs) > 3  # drawn across the range, not one value
    # no ambience of other tags: coloured noise, at the same SNR
    z, drawn = aw.background(y, FS, np.random.default_rng(0), aug, aw.ambience_picker(pool[1:], ["tone"], None))
    assert drawn["noise"] in ("white", "pink", "brown") and len(z) == len(y)
    snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((z.astype(np.float64) - y) ** 2))
    assert snr == pytest.approx(drawn["snr_db"], abs=0.01)
    # pink and brown noise put more power in the lowest tenth of the band than white noise does
    low = {c: np.sum(np.abs(np.fft.rfft(aw.coloured_noise(FS, c, np.random.default_rng(0))))[:1100] ** 2)
           for c in ("white", "pink", "brown")}
    assert low["white"] < low["pink"] < low["brown"]


def test_a_silent_stretch_of_ambience_falls_back_to_noise_not_nan():
    """An ambience clip that is silent where its stretch is cut (here all but its last sample) has no level:
    the mix falls back to coloured noise instead of scaling silence by an infinite gain (NaN patches)."""
    aug = aw.WaveAugment(background=True, renditions=1)
    y = _tone(0.05, 300)
    gap = np.zeros(FS, np.float32)
    gap[-1] = 0.5
    pick = aw.ambience_picker([("gap.wav", ("rain",))], ["tone"], lambda name: gap)
    drawn_kinds = set()
    for seed in range(10):
        z, drawn = aw.background(y, FS, np.random.default_rng(seed), aug, pick)
        assert np.isfinite(z).all() and len(z) == len(y)
        drawn_kinds.add("noise" in drawn)
    assert True in drawn_kinds  # some stretches were silent and fell back
    with pytest.raises(ValueError, match="silent noise"):
        aw.mix_at_snr(y, np.zeros(len(y)), 10.0)


def test_room_keeps_the_tail_and_the_level_and_changes_the_sound():
    y = _tone(1.0, 700)
    aug = aw.WaveAugment(room=True, renditions=1)
    for seed in range(3):
        z, drawn = aw.room(y, FS, np.random.default_rng(seed), aug)
        assert len(z) == len(y) + drawn["rir_samples"] - 1 and drawn["max_order"] <= aw.MAX_REFLECTION_ORDER
        assert np.sqrt(np.mean(z.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(y.astype(np.float64) ** 2)), rel=1e-4)
        assert np.abs(z[:len(y)] - y).max() > 0.05 and np.any(z[len(y):])  # a reverberant tail after the end


def test_mic_and_codec_keep_the_length_and_change_the_sound():
    y = np.random.default_rng(0).standard_normal(FS).astype(np.float32) * 0.2
    aug = aw.WaveAugment(mic=True, codec=True, renditions=1)
    for stage in (aw.mic, aw.codec):
        for seed in range(4):
            z, drawn = stage(y, FS, np.random.default_rng(seed), aug)
            assert len(z) == len(y) and z.dtype == np.float32 and drawn
            assert np.abs(z - y).max() > 0.01


def _peak_hz(y):
    return np.argmax(np.abs(np.fft.rfft(y * np.hanning(len(y))))) * FS / len(y)


def test_speech_is_never_pitch_or_speed_changed():
    aug = aw.WaveAugment(pitch_speed=True, mic=True, renditions=1)
    for seed in range(200):
        assert "pitch_speed" not in aw.draw_chain(aug, ["speech", "voice"], np.random.default_rng(seed))
    y = _tone(1.0, 1000)
    only = aw.WaveAugment(pitch_speed=True, renditions=3, pitch_semitones=2.0)
    assert aw.render(y, FS, ["speech"], only, "s.wav", 0) == (None, [])  # no rendition rather than a copy
    shifted = [abs(_peak_hz(aw.render(y, FS, ["tone"], only, "t.wav", r)[0]) - 1000) for r in range(3)]
    assert max(shifted) > 10  # a non-speech clip does move


def test_skip_tags_spare_those_clips_and_leave_the_others_unchanged():
    y = _tone(1.0, 500)
    every = aw.WaveAugment(room=True, mic=True, renditions=2, seed=4)
    spare = aw.WaveAugment(room=True, mic=True, renditions=2, seed=4, skip_tags=("speech",))
    assert aw.render(y, FS, ["speech", "word"], spare, "s.wav", 0) == (None, [])
    assert aw.render(y, FS, ["speech", "word"], every, "s.wav", 0)[0] is not None
    for r in range(2):  # a clip without the tag draws what it drew before, sample for sample
        a, b = aw.render(y, FS, ["tone"], every, "t.wav", r), aw.render(y, FS, ["tone"], spare, "t.wav", r)
        assert a[1] == b[1] and np.array_equal(a[0], b[0])
