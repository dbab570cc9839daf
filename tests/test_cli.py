"""The command line, through click's test runner (and once as a real process)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from coala_embed import checkpoint as ckpt_module
from coala_embed.cli import expand_inputs, main

from conftest import TAGS, tone, write_wav


@pytest.fixture
def run(ckpt_dir):
    def invoke(*args, model=True):
        extra = ["--model", str(ckpt_dir), "--device", "cpu"] if model else []
        args = [str(a) for a in args]
        cmd = args[:1] if args and args[0] == "tags" else []
        return CliRunner().invoke(main, cmd + args[len(cmd):] + extra, catch_exceptions=False)
    return invoke


def test_files_folders_and_globs(run, wav_dir, tmp_path):
    out = tmp_path / "feats"
    r = run(wav_dir / "a.wav", str(wav_dir / "[bc].wav"), "--output-dir", out)  # a quoted glob is expanded too
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out)) == ["a.npz", "b.npz", "c.npz"]
    assert "3 written, 0 skipped (output exists), 0 failed" in r.stderr
    assert "of audio" in r.stderr and "real time" in r.stderr
    with np.load(out / "b.npz") as z:
        assert z["embedding"].shape == (2, 1920) and z["mean"].shape == (1920,)


def test_folder_is_recursive_and_keeps_layout(run, tmp_path):
    src = tmp_path / "corpus"
    for sub in ("dogs", "cats/small"):
        (src / sub).mkdir(parents=True)
        write_wav(src / sub / "x.wav", 1.0)
    write_wav(src / "top.wav", 1.0)
    (src / "readme.txt").write_text("not audio")
    (src / ".hidden").mkdir()
    write_wav(src / ".hidden" / "h.wav", 1.0)
    out = tmp_path / "feats"
    r = run(src, "-o", out, "--suffix", "coala")
    assert r.exit_code == 0, r.output
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.npz"))
    assert found == ["cats/small/x_coala.npz", "dogs/x_coala.npz", "top_coala.npz"]


def test_output_collisions_are_reported(run, tmp_path):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        write_wav(tmp_path / sub / "same.wav", 1.0)
    write_wav(tmp_path / "a" / "same.flac", 1.0)
    r = run(*(tmp_path / f for f in ("a/same.wav", "a/same.flac", "b/same.wav", "c/same.wav")), "-o", tmp_path / "o")
    assert r.exit_code == 1  # same.npz, same.flac.npz, same.wav.npz, and then no name left for c/same.wav
    assert "would overwrite the output of" in r.stderr and "3 written" in r.stderr
    assert sorted(os.listdir(tmp_path / "o")) == ["same.flac.npz", "same.npz", "same.wav.npz"]


def test_missing_and_bad_inputs_fail_but_others_are_written(run, wav_dir, tmp_path):
    (tmp_path / "junk.wav").write_text("not audio")
    out = tmp_path / "feats"
    r = run(wav_dir / "a.wav", tmp_path / "missing.wav", tmp_path / "junk.wav", str(tmp_path / "*.ogg"), "-o", out)
    assert r.exit_code == 1
    assert "missing.wav: no such file or folder" in r.stderr
    assert "junk.wav: not a readable audio file" in r.stderr
    assert "*.ogg: no files match this pattern" in r.stderr
    assert "1 written, 0 skipped (output exists), 3 failed" in r.stderr
    assert os.listdir(out) == ["a.npz"]


def test_folder_without_audio(run, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    r = run(tmp_path / "empty", "-o", tmp_path / "feats")
    assert r.exit_code == 2
    assert "no audio files in this folder" in r.stderr and "no audio input found" in r.stderr


def test_skip_existing_and_overwrite(run, wav_dir, tmp_path):
    out = tmp_path / "feats"
    assert run(wav_dir, "-o", out, "-q").exit_code == 0
    r = run(wav_dir, "-o", out)
    assert r.exit_code == 0 and "0 written, 3 skipped (output exists), 0 failed" in r.stderr
    r = run(wav_dir, "-o", out, "--overwrite", "--batch-size", "1", "--hop-size", "0.5")
    assert r.exit_code == 0 and "3 written, 0 skipped" in r.stderr
    with np.load(out / "b.npz") as z:
        assert len(z["embedding"]) > 2


def test_quiet_has_no_progress_bar(run, wav_dir, tmp_path):
    r = run(wav_dir, "-o", tmp_path / "q", "--quiet")
    assert r.exit_code == 0
    assert "file/s" not in r.stderr and "%|" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("3 written")
    r = run(wav_dir, "-o", tmp_path / "p", "--center", "--resampler", "kaiser_fast")
    assert "%|" in r.stderr  # the progress bar


def test_unwritable_output_folder(run, wav_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    r = run(wav_dir / "a.wav", "-o", tmp_path / "file" / "feats")
    assert r.exit_code != 0
    assert "cannot create output folder" in r.output


def test_no_bundled_weights(run, wav_dir, tmp_path, monkeypatch):
    from coala_embed import engine

    monkeypatch.setattr(ckpt_module, "bundled_weights_dir", lambda: tmp_path)
    monkeypatch.setattr(engine, "_loaded", {})  # a bundled model loaded by an earlier test is not loaded here
    r = run(wav_dir / "a.wav", "-o", tmp_path / "feats", model=False)
    assert r.exit_code == 1 and "no weights are bundled" in r.output


def test_tampered_model(run, tmp_path, ckpt_dir, wav_dir):
    import shutil

    bad = tmp_path / "bad_ckpt"
    shutil.copytree(ckpt_dir, bad)
    with open(bad / "model.safetensors", "r+b") as f:
        f.seek(-3, 2)
        f.write(b"xyz")
    r = CliRunner().invoke(main, [str(wav_dir / "a.wav"), "-o", str(tmp_path / "f"), "--model", str(bad)])
    assert r.exit_code == 1 and "does not match" in r.output


def test_tags_command(run, wav_dir):
    r = run("tags", wav_dir / "a.wav", wav_dir / "b.wav", "--top-k", "3")
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(wav_dir / "a.wav") + "\t")
    tags = [t.split(" (")[0] for t in lines[0].split("\t")[1].split(", ")]
    assert len(tags) == 3 and all(t in TAGS for t in tags)
    r = run("tags", wav_dir / "nothing.wav")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_help_and_version():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "coala-embed tags" in r.output
    for sub in ("embed", "tags"):
        r = CliRunner().invoke(main, [sub, "--help"])
        assert r.exit_code == 0 and "--hop-size" in r.output
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and "coala-embed" in r.output
    r = CliRunner().invoke(main, [])  # no arguments: the help (as git and pip), exit 2
    assert r.exit_code == 2 and "Missing argument" not in r.output
    assert "coala-embed tags --list-tags" in r.stderr and "Usage: coala-embed [OPTIONS] INPUTS..." in r.stderr
    assert "INPUTS... --output-dir" not in r.stderr  # the output folder is optional


def test_list_tags(run):
    r = run("tags", "--list-tags")
    assert r.exit_code == 0 and r.stdout.split() == TAGS
    r = run("tags")
    assert r.exit_code == 2 and "--list-tags" in r.output


@pytest.mark.parametrize("ratio, text", [(0.034, "0.034x"), (0.4, "0.4x"), (7.16, "7.2x"), (596.4, "596x")])
def test_real_time_factor_is_never_rounded_to_zero(ratio, text):
    from coala_embed.cli import _format_speed

    assert _format_speed(ratio) == f"{text} real time"


def test_expand_inputs_deduplicates(wav_dir):
    files, problems = expand_inputs([str(wav_dir), str(wav_dir / "a.wav"), str(wav_dir / "*.wav")])
    assert problems == [] and sorted(p.name for p, _ in files) == ["a.wav", "b.wav", "c.wav"]


def test_real_process_exit_status(ckpt_dir, wav_dir, tmp_path):
    cmd = [sys.executable, "-m", "coala_embed.cli", str(wav_dir / "a.wav"), str(tmp_path / "nope.wav"),
           "--output-dir", str(tmp_path / "feats"), "--model", str(ckpt_dir), "--device", "cpu", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 1, p.stderr
    assert "nope.wav: no such file" in p.stderr and "1 written" in p.stderr
    assert (tmp_path / "feats" / "a.npz").exists()


def test_unusable_device(ckpt_dir, wav_dir, tmp_path):
    r = CliRunner().invoke(main, [str(wav_dir / "a.wav"), "-o", str(tmp_path / "f"), "--model", str(ckpt_dir),
                                  "--device", "no-such-device"])
    assert r.exit_code == 1 and "cannot use torch device 'no-such-device'" in r.output


def test_interrupt_leaves_complete_files_and_resumes(run, wav_dir, tmp_path, monkeypatch):
    from coala_embed import sinks

    real = sinks.write_npz_atomic
    calls = {"n": 0}

    def interrupt_second(target, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(target, **arrays)

    monkeypatch.setattr(sinks, "write_npz_atomic", interrupt_second)
    out = tmp_path / "feats"
    r = run(wav_dir, "-o", out)
    assert r.exit_code == 130 and "run the same command again to resume" in r.stderr
    assert os.listdir(out) == ["a.npz"]
    monkeypatch.setattr(sinks, "write_npz_atomic", real)
    r = run(wav_dir, "-o", out)
    assert r.exit_code == 0 and "2 written, 1 skipped" in r.stderr


def test_recursive_glob_keeps_layout(run, tmp_path):
    for sub in ("a", "b/c"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        write_wav(tmp_path / "data" / sub / "same.wav", 1.0)
    write_wav(tmp_path / "data" / "top.wav", 1.0)
    out = tmp_path / "feats"
    r = run(str(tmp_path / "data" / "**" / "*.wav"), "-o", out)
    assert r.exit_code == 0, r.output
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.npz"))
    assert found == ["a/same.npz", "b/c/same.npz", "top.npz"]


def test_full_disk_stops_at_the_first_file_with_one_message(run, wav_dir, tmp_path, monkeypatch):
    from coala_embed import sinks

    def full(f, **arrays):
        f.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks.np, "savez", full)
    r = run(wav_dir, "-o", tmp_path / "feats", "-q")
    assert r.exit_code == 1 and r.stderr.count("disk is full") == 1 and "a.wav" in r.stderr
    assert "run the same command again to resume" in r.stderr
    assert not [p for p in (tmp_path / "feats").rglob("*") if p.is_file()]  # nothing half-written


def test_the_hop_used_is_reported(run, wav_dir, tmp_path):
    r = run(wav_dir / "a.wav", "-o", tmp_path / "f", "--hop-size", "0.5")
    assert "--hop-size 0.5 s is 21 STFT frames, 0.4887 s" in r.stderr
    r = run(wav_dir / "a.wav", "-o", tmp_path / "g", "--hop-size", str(21 * 512 / 22000))
    assert "STFT frames" not in r.stderr


def test_quiet_silences_the_decoders_own_notes(ckpt_dir, tmp_path):
    """libmpg123 writes notes to file descriptor 2 itself; with -q only our errors and summary remain."""
    y = tone(3.0, 44100)
    sf.write(tmp_path / "a.mp3", y, 44100, format="MP3", subtype="MPEG_LAYER_III")
    data = (tmp_path / "a.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    cmd = [sys.executable, "-m", "coala_embed.cli", str(tmp_path / "cut.mp3"), "-o", str(tmp_path / "o"),
           "--model", str(ckpt_dir), "--device", "cpu"]
    loud = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    quiet = subprocess.run(cmd + ["-q"], capture_output=True, text=True, timeout=120)
    assert "Xing stream size" in loud.stderr  # the note this test is about still exists without -q
    assert "Xing" not in quiet.stderr and "cut.mp3: truncated" in quiet.stderr and quiet.returncode == 1
