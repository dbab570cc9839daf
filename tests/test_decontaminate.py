"""Landmark fingerprints find a clip's copies (re-encoded, resampled, level-changed, cropped) and nothing else."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr

from training.corpus import decontaminate as dc
from training.corpus import prepare

SR = 22050


def events(seconds, seed, sr=SR):
    """A sequence of tone bursts, glides and noise bursts: a non-stationary sound like a recording's."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * sr), np.float32)
    t = 0.0
    while t < seconds - 0.3:
        n = int(rng.uniform(0.05, 0.3) * sr)
        s = np.arange(n) / sr
        kind = rng.integers(3)
        if kind == 0:  # harmonic tone
            f0 = rng.uniform(150, 900)
            burst = sum(np.sin(2 * np.pi * f0 * k * s) / k for k in range(1, 5))
        elif kind == 1:  # glide
            f0, f1 = rng.uniform(200, 3000, 2)
            burst = np.sin(2 * np.pi * np.cumsum(np.linspace(f0, f1, n)) / sr)
        else:  # band of noise
            burst = np.convolve(rng.standard_normal(n), np.hanning(rng.integers(3, 30)), "same")
        start = int(t * sr)
        y[start:start + n] += (burst * np.hanning(n) * rng.uniform(0.2, 1.0) / np.abs(burst).max()).astype(np.float32)
        t += rng.uniform(0.03, 0.25)
    return 0.5 * y / np.abs(y).max()


def prints(y, sr):
    return dc.landmarks(np.concatenate(list(dc.decode.clip_blocks(
        lambda: dc.decode.mono_blocks_from_array(y, sr), sr, dc.FRONT_END))))


def unrelated(seconds=3.0):
    """Sounds of several kinds that share nothing with `events(..., seed=0)`."""
    rng = np.random.default_rng(7)
    s = np.arange(int(seconds * SR)) / SR
    clips = {
        "white noise": 0.3 * rng.standard_normal(len(s)),
        "brown noise": np.cumsum(rng.standard_normal(len(s))) * 0.002,
        "tone 440": 0.5 * np.sin(2 * np.pi * 440 * s),
        "chord": sum(0.2 * np.sin(2 * np.pi * f * s) for f in (262, 330, 392, 523)),
        "sweep": 0.5 * np.sin(2 * np.pi * (100 * s + 600 * s ** 2)),
        "clicks": np.where(np.arange(len(s)) % 2205 == 0, 0.9, 0.0),
        "other events": events(seconds, seed=1),
        "more events": events(seconds, seed=2),
    }
    if shutil.which("espeak-ng"):  # generated speech, where espeak-ng is installed
        for word in ("seven", "bicycle", "umbrella"):
            wav = subprocess.run(["espeak-ng", "--stdout", word], capture_output=True, check=True).stdout
            y, sr = sf.read(io.BytesIO(wav), dtype="float32")
            clips[f"speech {word}"] = soxr.resample(y, sr, SR)
    return {k: np.asarray(v, np.float32) for k, v in clips.items()}


def copies(y, tmp_path):
    """(name, path) of re-encoded, resampled, level-changed and cropped copies of y."""
    made = []
    for name, sr, gain_db, crop, fmt in [("flac 44.1 kHz", 44100, 0, (0, 0), "FLAC"),
                                        ("ogg 22.05 kHz -20 dB", SR, -20, (0, 0), "OGG"),
                                        ("wav 16 kHz stereo cropped +4 dB", 16000, 4, (0.5123, 0.7), "WAV"),
                                        ("ogg 48 kHz cropped -9 dB", 48000, -9, (1.0007, 0.3), "OGG")]:
        z = soxr.resample(y, SR, sr) * 10 ** (gain_db / 20)
        z = z[int(crop[0] * sr): len(z) - int(crop[1] * sr)]
        if "stereo" in name:
            z = np.stack([z, 0.8 * z], axis=1)
        path = tmp_path / f"{name.replace(' ', '_')}.{fmt.lower()}"
        sf.write(path, np.clip(z, -1, 1), sr, format=fmt)
        made.append((name, path))
    return made


def test_copies_match_at_their_offset_and_unrelated_sounds_do_not(tmp_path):
    y = events(4.0, seed=0)
    index = dc.Index([prints(y, SR)])
    for name, path in copies(y, tmp_path):
        found = index.match(*dc.landmarks(dc.signal(path)))
        assert len(found) == 1 and found[0][0] == 0, name
        _, score, offset, fraction, _ = found[0]
        assert score >= 3 * dc.MIN_SCORE and fraction >= 2 * dc.MIN_FRACTION, (name, score, fraction)
        crop = {"wav 16 kHz stereo cropped +4 dB": 0.5123, "ogg 48 kHz cropped -9 dB": 1.0007}.get(name, 0.0)
        assert abs(-offset * dc.HOP / dc.RATE - crop) <= 1.5 * dc.HOP / dc.RATE, (name, offset)
    for name, z in unrelated().items():
        found = [m for m in index.match(*prints(z, SR)) if m[3] >= dc.MIN_FRACTION]
        assert found == [], name


def test_unrelated_sounds_do_not_match_each_other():
    clips = unrelated()
    names = list(clips)
    index = dc.Index([prints(clips[n], SR) for n in names])
    for i, name in enumerate(names):
        found = {names[r] for r, _, _, fraction, _ in index.match(*prints(clips[name], SR)) if fraction >= dc.MIN_FRACTION}
        assert found <= {name}, name  # a steady tone has almost no hashes, so it need not find itself


def test_cli_excludes_the_copy_and_prepare_honours_it(tmp_path, capsys):
    corpus, refs = tmp_path / "corpus", tmp_path / "refs"
    (corpus / "audio").mkdir(parents=True)
    (refs / "set").mkdir(parents=True)
    y = events(3.0, seed=0)
    sf.write(refs / "set" / "clip.flac", y, SR)
    sf.write(refs / "other.flac", events(3.0, seed=5), SR)
    sf.write(refs / "set" / "broken.wav", np.zeros(0, np.float32), SR)  # unreadable: reported, not fatal
    copy = soxr.resample(y[int(0.4 * SR):], SR, 44100) * 0.3
    sf.write(corpus / "audio" / "copy.ogg", copy, 44100, format="OGG")
    sf.write(corpus / "audio" / "noise.flac", np.random.default_rng(99).standard_normal(SR).astype(np.float32) * 0.1, SR)
    sf.write(corpus / "audio" / "events.flac", events(2.0, seed=3), SR)
    clips = ["audio/copy.ogg", "audio/noise.flac", "audio/events.flac"]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps({"path": c, "tags": ["x"]}) + "\n" for c in clips))
    (corpus / "vocab.json").write_text(json.dumps(["x"]))

    dc.main([str(corpus), str(refs), "--workers", "1"])
    out = capsys.readouterr().out
    assert "audio/copy.ogg" in out and "clip.flac" in out
    report = json.loads((corpus / dc.REPORT).read_text())
    assert report["excluded"] == ["audio/copy.ogg"]
    assert [(m["clip"], m["reference"]) for m in report["matches"]] == [("audio/copy.ogg", str(refs / "set" / "clip.flac"))]
    assert abs(report["matches"][0]["offset_seconds"] + 0.4) < 0.02
    assert report["reference_clips"] == 3 and len(report["failures"]) == 1 and "broken.wav" in report["failures"][0]

    manifest = (corpus / "manifest.jsonl").read_bytes()
    assert dc.excluded_paths(corpus, manifest) == {"audio/copy.ogg"}
    with pytest.raises(ValueError, match="another manifest"):
        dc.excluded_paths(corpus, manifest + b"\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no audio files"):
        dc.main([str(corpus), str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="does not exist"):
        dc.main([str(corpus), str(tmp_path / "missing")])


def test_prepare_leaves_out_excluded_clips(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    clips = [f"audio/{i}.flac" for i in range(20)]
    for i, c in enumerate(clips):
        sf.write(corpus / c, events(1.5, seed=10 + i), SR)
    (corpus / "manifest.jsonl").write_text(
        "".join(json.dumps({"path": c, "tags": ["a" if i % 2 else "b"]}) + "\n" for i, c in enumerate(clips)))
    (corpus / "vocab.json").write_text(json.dumps(["a", "b"]))
    manifest = (corpus / "manifest.jsonl").read_bytes()
    (corpus / dc.REPORT).write_text(json.dumps({"manifest_sha256": hashlib.sha256(manifest).hexdigest(),
                                                "excluded": clips[:2]}))
    meta = prepare.prepare(corpus, tmp_path / "prepared", workers=1)
    assert meta["clips"] == 18 and meta["decontaminated_excluded"] == 2
