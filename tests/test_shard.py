"""Shards: N disjoint parts that together give the unsharded run, bit for bit."""
from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from coala_embed import load_model, process_file
from coala_embed.cli import main
from coala_embed.shard import device_from_env, parse_shard, shard_from_env, shard_indices, shard_of

from conftest import write_wav


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Eleven short files of different lengths in two folders, and one that is not audio."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "x").mkdir()
    (d / "y").mkdir()
    paths = [write_wav(d / ("x" if i % 2 else "y") / f"{i:02d}.wav", 0.5 + (i * 7) % 5, 16000, freq=150 + 90 * i,
                       seed=i) for i in range(11)]
    (d / "x" / "junk.wav").write_text("not audio")
    return d, paths + [str(d / "x" / "junk.wav")]


@pytest.fixture(scope="module")
def small(small_ckpt_dir):
    return load_model(small_ckpt_dir, device="cpu")


def test_parse_and_env():
    assert parse_shard("2/8") == (2, 8) and parse_shard("0/1") == (0, 1)
    for bad in ("8/8", "-1/4", "1/0", "1", "a/b", "1/2/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert shard_from_env({}) is None
    assert shard_from_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}) is None
    # several nodes: the global rank numbers the shard, the local rank only picks the GPU
    assert shard_from_env({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"}) == (5, 8)
    assert shard_from_env({"WORLD_SIZE": "4", "LOCAL_RANK": "3"}) == (3, 4)
    assert device_from_env({}) is None


def test_shards_are_disjoint_cover_and_ignore_input_order():
    paths = [f"d/{c}{i}.wav" for c in "zab" for i in range(7)]
    for n in (1, 2, 3, 5, 30):
        parts = [[paths[i] for i in shard_indices(paths, (k, n))] for k in range(n)]
        flat = [p for part in parts for p in part]
        assert sorted(flat) == sorted(paths) and len(set(flat)) == len(paths)
        shuffled = random.Random(n).sample(paths, len(paths))
        assert [sorted(shuffled[i] for i in shard_indices(shuffled, (k, n))) for k in range(n)] == \
            [sorted(part) for part in parts]


def test_adding_or_removing_files_moves_no_other_file():
    """A file's shard depends on its key alone (a hash), so a growing folder keeps its shards; balanced
    in expectation: 10,000 keys over 8 shards land within 5 % of 1/8 each."""
    keys = [f"sounds/{i // 100:03d}/{i:05d}.wav" for i in range(10_000)]
    before = {keys[i]: k for k in range(8) for i in shard_indices(keys, (k, 8))}
    more = keys[:5000] + ["new/one.wav", "sounds/000/00000 copy.wav"] + keys[5000::2]  # added, removed, reordered
    after = {more[i]: k for k in range(8) for i in shard_indices(more, (k, 8))}
    assert all(after[key] == before[key] for key in after if key in before)
    counts = np.bincount(list(before.values()), minlength=8)
    assert counts.min() > 0.95 * 10_000 / 8 and counts.max() < 1.05 * 10_000 / 8
    assert shard_of("sounds/000/00000.wav", 8) == before["sounds/000/00000.wav"]  # the same on every machine


def test_cli_keys_and_shards_do_not_depend_on_how_the_folder_is_spelled(small_ckpt_dir, corpus, tmp_path, monkeypatch):
    """Resume and shards follow each file's key (its path below the folder given), not the spelling."""
    pq = pytest.importorskip("pyarrow.parquet")
    d = tmp_path / "corpus"
    shutil.copytree(corpus[0], d)  # a copy: one file is changed below
    out = tmp_path / "t"
    base = [str(out), "--format", "parquet", "--model", str(small_ckpt_dir), "-q"]
    r1 = CliRunner().invoke(main, [str(d), "-o", *base, "--shard", "0/2"], catch_exceptions=False)
    monkeypatch.chdir(d.parent)
    r2 = CliRunner().invoke(main, [f"./{d.name}/../{d.name}/", "-o", *base, "--shard", "0/2"], catch_exceptions=False)
    assert "0 written" in r2.stderr and "0 written" not in r1.stderr
    table = pq.read_table(out / "embeddings-00000-of-00002.parquet")
    keys = table["key"].to_pylist()
    assert len(keys) == len(set(keys)) and all(not k.startswith("/") for k in keys)  # e.g. 'x/01.wav'
    assert all(shard_of(k, 2) == 0 for k in keys)
    # a file changed since it was embedded is embedded again, and replaces its row
    changed = next(d / k for k in keys if "junk" not in k)
    write_wav(changed, 2.0, 16000, freq=999)
    r3 = CliRunner().invoke(main, [str(d), "-o", *base, "--shard", "0/2"], catch_exceptions=False)
    assert "1 written" in r3.stderr
    assert pq.read_table(out / "embeddings-00000-of-00002.parquet").num_rows == len(keys)


def test_union_of_shards_is_the_unsharded_run(small, corpus, tmp_path):
    _, paths = corpus
    whole = process_file(paths, output_dir=tmp_path / "whole", model=small, batch_size=8)
    assert [r.status for r in whole].count("failed") == 1
    seen, wrote = [], set()
    for k in range(3):  # all shards write into one folder, as N jobs would
        for r in process_file(paths, output_dir=tmp_path / "sharded", model=small, batch_size=8, shard=(k, 3)):
            seen.append(r.path)
            if r.status == "written":
                wrote.add(k)
                with np.load(r.output) as a, np.load(tmp_path / "whole" / os.path.basename(r.output)) as b:
                    for key in ("embedding", "timestamps", "mean"):
                        np.testing.assert_array_equal(a[key], b[key])
    assert sorted(seen) == sorted(paths)  # each file once, by exactly one shard
    assert sorted(os.listdir(tmp_path / "sharded")) == sorted(os.listdir(tmp_path / "whole"))
    # a shard run again resumes: everything it wrote is skipped, the bad file is retried (keys hold the
    # temporary folder's path, so which of the 3 shards got files changes from run to run: one that did)
    again = process_file(paths, output_dir=tmp_path / "sharded", model=small, shard=(min(wrote), 3))
    assert {r.status for r in again} <= {"skipped", "failed"} and "skipped" in {r.status for r in again}


def test_cli_shard_and_torchrun_environment(small_ckpt_dir, corpus, tmp_path, monkeypatch):
    d, paths = corpus
    out = tmp_path / "feats"
    args = [str(d), "-o", str(out), "--model", str(small_ckpt_dir), "--device", "cpu", "-q"]
    r0 = CliRunner().invoke(main, args + ["--shard", "0/2"], catch_exceptions=False)
    first = {p.name for p in out.rglob("*.npz")}
    assert f"{len(first)} written, 0 skipped" in r0.stderr
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    r1 = CliRunner().invoke(main, args, catch_exceptions=False)  # as torchrun's second process
    second = {p.name for p in out.rglob("*.npz")} - first
    assert f"{len(second)} written, 0 skipped" in r1.stderr
    assert first.isdisjoint(second) and len(first | second) == len(paths) - 1
    # the bad file fails in exactly one of the two shards, which alone exits 1
    assert sorted([r0.exit_code, r1.exit_code]) == [0, 1]
    assert ("junk.wav" in r0.stderr) != ("junk.wav" in r1.stderr)
    r = CliRunner().invoke(main, args + ["--shard", "3/2"])
    assert r.exit_code == 2 and "0 <= K < N" in r.output


def test_torchrun_picks_the_local_gpu(monkeypatch):
    import torch

    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_from_env(env) == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_from_env(env) is None
