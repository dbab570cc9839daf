"""Ray Data on a local two-CPU Ray instance; skipped where Ray is not installed."""
from __future__ import annotations

import numpy as np
import pytest

from coala_embed import load_model, process_file

from conftest import write_wav

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_embed_dataset_matches_the_table_and_writes_parquet(local_ray, small_ckpt_dir, tmp_path):
    import coala_embed.ray

    paths = [write_wav(tmp_path / f"{i}.wav", 0.5 + i % 4, 16000, freq=200 + 70 * i, seed=i) for i in range(7)]
    (tmp_path / "junk.wav").write_text("not audio")
    paths.append(str(tmp_path / "junk.wav"))
    ds = coala_embed.ray.embed_dataset(paths, model=small_ckpt_dir, batch_size=3, num_workers=2, frames=True)
    ds.write_parquet(str(tmp_path / "ray_out"))
    got = {r["path"]: r for r in pq.read_table(tmp_path / "ray_out").to_pylist()}
    assert sorted(got) == sorted(paths)  # each file once

    process_file(paths, output_dir=tmp_path / "cli", model=load_model(small_ckpt_dir, device="cpu"),
                 output_format="parquet", frames=True)
    table = pq.read_table(tmp_path / "cli" / "embeddings.parquet")
    for row in table.to_pylist():
        r = got[row["path"]]
        assert (r["status"], r["duration"]) == (row["status"], row["duration"])
        for key in ("embedding", "patch_embeddings", "timestamps"):
            if row[key] is None:
                assert r[key] is None
            else:
                np.testing.assert_array_equal(np.array(r[key]), np.array(row[key]))
    assert got[str(tmp_path / "junk.wav")]["status"] == "failed" and "junk.wav" in got[str(tmp_path / "junk.wav")]["error"]


def test_embed_dataset_from_a_ray_dataset(local_ray, small_ckpt_dir, tmp_path):
    import coala_embed.ray

    paths = [write_wav(tmp_path / f"{i}.wav", 1.0, 16000, seed=i) for i in range(3)]
    ds = ray.data.from_items([{"path": p, "label": i} for i, p in enumerate(paths)])
    rows = coala_embed.ray.embed_dataset(ds, model=small_ckpt_dir, num_workers=1).take_all()
    assert sorted(r["path"] for r in rows) == paths and all(len(r["embedding"]) == 120 for r in rows)
    with pytest.raises(ValueError, match="'path' column"):
        coala_embed.ray.embed_dataset(ray.data.from_items([{"file": "x"}]), model=small_ckpt_dir)
