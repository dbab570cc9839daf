"""The Parquet table: contents, resuming, a bad file as a failed row, and surviving SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from coala_embed import load_model, process_file
from coala_embed import parquet as table_module
from coala_embed.cli import main
from coala_embed.shard import shard_of

from conftest import write_wav

pq = pytest.importorskip("pyarrow.parquet")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    paths = [write_wav(d / f"{i:02d}.wav", 0.5 + (i * 7) % 5, 16000, freq=150 + 90 * i, seed=i) for i in range(9)]
    (d / "junk.wav").write_text("not audio")
    return paths + [str(d / "junk.wav")]


@pytest.fixture(scope="module")
def small(small_ckpt_dir):
    return load_model(small_ckpt_dir, device="cpu")


def rows(table_path):
    return {r["path"]: r for r in pq.read_table(table_path).to_pylist()}


def test_table_matches_npz_and_has_a_failed_row(small, corpus, tmp_path):
    npz = process_file(corpus, output_dir=tmp_path / "npz", model=small)
    results = process_file(corpus, output_dir=tmp_path / "t", model=small, output_format="parquet", frames=True)
    assert [r.status for r in results] == [r.status for r in npz] == ["written"] * 9 + ["failed"]
    assert sorted(os.listdir(tmp_path / "t")) == ["embeddings.parquet"]  # no lock file left
    table = pq.read_table(tmp_path / "t" / "embeddings.parquet")
    assert table.schema.field("embedding").type.list_size == small.embedding_size
    assert str(table.schema.field("embedding").type.value_type) == "float"
    got = rows(tmp_path / "t" / "embeddings.parquet")
    assert len(got) == table.num_rows == 10
    for r in npz[:9]:
        row = got[r.path]
        assert row["status"] == "written" and row["error"] is None
        assert row["duration"] == pytest.approx(len(sf.read(r.path)[0]) / 16000)
        with np.load(r.output) as z:
            np.testing.assert_array_equal(np.array(row["embedding"], np.float32), z["mean"])
            np.testing.assert_array_equal(np.array(row["patch_embeddings"], np.float32), z["embedding"])
            np.testing.assert_array_equal(np.array(row["timestamps"]), z["timestamps"])
    bad = got[corpus[-1]]
    assert bad["status"] == "failed" and "junk.wav" in bad["error"] and bad["embedding"] is None
    assert bad["duration"] is None and bad["patch_embeddings"] is None
    settings = json.loads(table.schema.metadata[b"coala_embed"])
    assert settings["weights_sha256"] == small.sha256 and settings["hop_size"] is None


def test_rerun_skips_retries_failed_and_refuses_other_settings(small, corpus, tmp_path):
    out = tmp_path / "t"
    late = tmp_path / "late.wav"
    late.write_text("still being copied")
    paths = corpus[:9] + [str(late)]
    process_file(paths[:4] + [str(late)], output_dir=out, model=small, output_format="parquet", shard=(0, 1))
    target = out / "embeddings-00000-of-00001.parquet"
    before = rows(target)
    assert before[str(late)]["status"] == "failed"
    write_wav(late, 1.0, 16000)  # the bad file is repaired
    results = process_file(paths, output_dir=out, model=small, output_format="parquet", shard=(0, 1))
    assert [r.status for r in results] == ["skipped"] * 4 + ["written"] * 6  # new files and the retried one
    after = rows(target)
    assert pq.read_table(target).num_rows == len(after) == 10  # one row per path
    assert after[str(late)]["status"] == "written" and after[str(late)]["error"] is None
    for p in paths[:4]:
        assert after[p] == before[p]
    with pytest.raises(ValueError, match=r"hop_size None, now 1.0.*overwrite"):
        process_file(corpus, output_dir=out, model=small, output_format="parquet", shard=(0, 1), hop_size=1.0)
    with pytest.raises(ValueError, match="frames False, now True"):
        process_file(corpus, output_dir=out, model=small, output_format="parquet", shard=(0, 1), frames=True)
    results = process_file(corpus[:2], output_dir=out, model=small, output_format="parquet", shard=(0, 1),
                           hop_size=1.0, overwrite=True)
    assert [r.status for r in results] == ["written"] * 2 and len(rows(target)) == 2  # replaced


def test_one_run_per_table(small, tmp_path):
    writer = table_module.TableWriter(tmp_path / "e.parquet", small.embedding_size)
    with pytest.raises(RuntimeError, match="another run is writing e.parquet"):
        table_module.TableWriter(tmp_path / "e.parquet", small.embedding_size)
    writer.close()
    table_module.TableWriter(tmp_path / "e.parquet", small.embedding_size).close()


def test_without_pyarrow_a_clear_error(small, corpus, tmp_path, monkeypatch, small_ckpt_dir):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r'pip install "coala-embed\[parquet\]"'):
        process_file(corpus[:1], output_dir=tmp_path, model=small, output_format="parquet")
    r = CliRunner().invoke(main, [corpus[0], "-o", str(tmp_path), "--format", "parquet", "--model", str(small_ckpt_dir)])
    assert r.exit_code == 1 and "coala-embed[parquet]" in r.output
    assert process_file(corpus[:1], output_dir=tmp_path, model=small)[0].status == "written"  # npz needs no pyarrow


def test_cli_parquet(small_ckpt_dir, corpus, tmp_path):
    out = tmp_path / "t"
    args = [*corpus, "-o", str(out), "--format", "parquet", "--shard", "1/2", "--model", str(small_ckpt_dir), "-q"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    got = rows(out / "embeddings-00001-of-00002.parquet")
    # files named on the command line are known by their names (their folder is their root)
    assert sorted(got) == sorted(p for p in corpus if shard_of(os.path.basename(p), 2) == 1)
    assert f"{sum(g['status'] == 'written' for g in got.values())} written" in r.stderr
    assert r.exit_code == (1 if corpus[-1] in got else 0)
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert "0 written" in r.stderr and len(rows(out / "embeddings-00001-of-00002.parquet")) == len(got)


# ----------------------------------------------------------------------------------------------
# SIGKILL: a real process killed at three points (mid-run, mid-merge, between the merge's rename and
# the removal of the parts); a re-run must give the table of an uninterrupted run, each row once

KILLER = r"""
import json, os, pathlib, signal, sys
from coala_embed import load_model, parquet, process_file
paths, out, ckpt, when = json.loads(sys.argv[1])
parquet.ROWS_PER_PART = 2
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
n = []
def on_result(r):
    n.append(r)
    if when == "run" and len(n) == 8:  # 3 skipped, 5 embedded: two parts committed, one row held in memory
        die()
if when == "merge":  # the merged table is written to its temporary file, not yet renamed
    real = os.replace
    parquet.os.replace = lambda a, b: die() if str(b).endswith(".parquet") and ".part-" not in str(b) else real(a, b)
if when == "cleanup":  # the compacted table has replaced the old one; its parts are still there
    real_unlink = pathlib.Path.unlink
    pathlib.Path.unlink = lambda p, *a, **k: die() if ".part-" in p.name else real_unlink(p, *a, **k)
process_file(paths, output_dir=out, model=load_model(ckpt, device="cpu"), output_format="parquet",
             frames=True, on_result=on_result, shard=(0, 1))
"""


@pytest.mark.parametrize("when", ["run", "merge", "cleanup"])
def test_sigkill_loses_nothing_and_writes_nothing_twice(small, small_ckpt_dir, corpus, tmp_path, when):
    ref = tmp_path / "ref"
    process_file(corpus, output_dir=ref, model=small, output_format="parquet", frames=True, shard=(0, 1))
    expected = rows(ref / "embeddings-00000-of-00001.parquet")
    out = tmp_path / "killed"
    # a table from an earlier run of part of the list is there already
    process_file(corpus[:3], output_dir=out, model=small, output_format="parquet", frames=True, shard=(0, 1))
    p = subprocess.run([sys.executable, "-c", KILLER, json.dumps([corpus, str(out), str(small_ckpt_dir), when])],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert p.returncode == -signal.SIGKILL, p.stderr
    parts = list(out.glob("embeddings-00000-of-00001.part-*.parquet"))
    assert len(parts) >= (2 if when == "run" else 4)
    # after the crash the folder reads as a table with every committed row (the parts are Parquet
    # files of the dataset, nothing hidden): 3 earlier rows and 2 parts of 2 rows, or all 10
    visible = pq.ParquetDataset(out).read().to_pandas()
    assert set(visible.columns) >= {"path", "key", "status", "embedding"}
    assert visible.key.nunique() == (7 if when == "run" else len(corpus))
    assert len(table_module.read_table(out)) == visible.key.nunique()  # one row per key, the newest
    results = process_file(corpus, output_dir=out, model=small, output_format="parquet", frames=True, shard=(0, 1))
    if when == "run":  # the earlier table's 3 rows and 2 parts of 2 rows are kept, the rest is embedded
        assert [r.status for r in results].count("skipped") == 3 + 4
    else:  # everything was committed: only the failed row is tried again
        assert [r.status for r in results].count("skipped") == 9
    assert sorted(os.listdir(out)) == ["embeddings-00000-of-00001.parquet"]
    table = pq.read_table(out / "embeddings-00000-of-00001.parquet")
    got = rows(out / "embeddings-00000-of-00001.parquet")
    assert table.num_rows == len(got) == len(expected) == len(corpus)
    for path, row in expected.items():
        assert got[path]["status"] == row["status"]
        for key in ("embedding", "patch_embeddings", "timestamps", "duration"):
            assert got[path][key] == row[key]  # bit for bit (floats compare exactly)
