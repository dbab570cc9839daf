"""coala-embed search: Parquet tables and .npz folders, clips and frames, by file, time range and words."""
import json
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from coala_embed import load_model, process_file
from coala_embed.cli import main
from coala_embed.search import Index, Query, SearchError, exact_top, search
from coala_embed.vocabulary import UnmappedWords

from conftest import make_checkpoint, write_wav

FREQS = {"low.wav": 200, "mid.wav": 900, "high.wav": 3000, "mid2.wav": 950}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return load_model(make_checkpoint(tmp_path_factory.mktemp("ckpt_s"), seed=1, n_filters=8), device="cpu")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    d = tmp_path_factory.mktemp("sounds")
    for i, (name, f) in enumerate(FREQS.items()):
        write_wav(d / name, 7.0 if name == "low.wav" else 3.0, 22050, freq=f, seed=i)
    return d


@pytest.fixture(scope="module")
def collections(sounds, small_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("collections")
    paths = sorted(str(p) for p in sounds.glob("*.wav"))
    process_file(paths, output_dir=out / "npz", model=small_model)
    process_file(paths, output_dir=out / "pq", output_format="parquet", frames=True, model=small_model)
    process_file(paths, output_dir=out / "pq_clips", output_format="parquet", model=small_model)
    return out


@pytest.mark.parametrize("name", ["npz", "pq", "pq_clips"])
def test_file_query_finds_itself_first(collections, sounds, small_model, name):
    hits = search(collections / name, [str(sounds / "mid.wav")], top_k=3, model=small_model)[0]
    assert len(hits) == 3 and os.path.basename(hits[0].path).startswith("mid")
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].start == 0.0 and hits[0].end > 2.2  # .npz: the end of the last patch


@pytest.mark.parametrize("name", ["npz", "pq"])
def test_frames_time_range_reports_where(collections, sounds, small_model, name):
    # the 7-s file has patches at 0-2.2, 2.2-4.5, 4.5-6.7 s (+ a padded tail); query its second patch exactly
    ps = small_model.frontend.patch_seconds
    index = Index(collections / name, model=small_model, frames=True)
    hits = index.search([f"{sounds / 'low.wav'}@{ps:.6f}-{2 * ps:.6f}"], top_k=2, per_file=2)[0]
    assert os.path.basename(hits[0].path).startswith("low")
    assert hits[0].start == pytest.approx(ps, abs=0.02) and hits[0].end == pytest.approx(2 * ps, abs=0.02)
    assert hits[0].score > 0.999
    one = index.search([str(sounds / "low.wav")], top_k=4)[0]  # per_file=1: four different files
    assert len({h.path for h in one}) == 4


def test_words_query_and_combined(collections, sounds, small_model):
    from coala_embed import align_audio, get_tag_embedding

    index = Index(collections / "pq_clips", model=small_model)
    hits = index.search(text="tag03 tag07", top_k=4)[0]
    rows = np.array(index.rows.vectors, np.float32)
    a = align_audio(rows, model=small_model)
    t = get_tag_embedding(["tag03", "tag07"], model=small_model)
    expected = (a @ t) / np.linalg.norm(a, axis=1) / np.linalg.norm(t)
    order = np.argsort(-expected)
    assert [h.path for h in hits] == [index.rows.files[i] for i in order]
    assert [h.score for h in hits] == pytest.approx(expected[order].tolist(), abs=1e-4)
    both = index.search([str(sounds / "high.wav")], text="tag03", top_k=4)[0]
    assert len(both) == 4 and all(-1.0 <= h.score <= 1.0 for h in both)


def test_clear_errors(collections, sounds, small_model, tmp_path):
    index = Index(collections / "npz", model=small_model)
    with pytest.raises(SearchError, match="'xyzzy', 'qq' in 'xyzzy qq' maps to no tag"):
        index.search(text="xyzzy qq")
    with pytest.warns(UnmappedWords, match="'xyzzy' in 'tag03 xyzzy'"):  # searched as tag03, and said so
        assert index.search(text="tag03 xyzzy") == index.search(text="tag03")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(SearchError, match=f"cannot decode query {bad}"):
        index.search([str(bad)])
    with pytest.raises(SearchError, match="empty time range"):
        Query.parse(f"{sounds / 'mid.wav'}@5-2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SearchError, match="empty collection"):
        Index(tmp_path / "empty", model=small_model)
    other = load_model(make_checkpoint(tmp_path / "other", seed=5, n_filters=8), device="cpu")
    with pytest.raises(SearchError, match=f"{small_model.sha256}.*{other.sha256}"):
        Index(collections / "pq", model=other)
    # the same weights read as a checkpoint of 0.8 or before (no time_mean_blocks: the latent alone)
    older = tmp_path / "older"
    older.mkdir()
    for f in small_model.folder.iterdir():
        (older / f.name).write_bytes(f.read_bytes())
    config = json.loads((older / "config.json").read_text())
    del config["model"]["time_mean_blocks"]
    (older / "config.json").write_text(json.dumps(config))
    with pytest.raises(SearchError, match="holds 120-d embeddings and this model gives 72-d ones"):
        Index(collections / "pq", model=load_model(older, device="cpu"))


def test_empty_table_refused(tmp_path, small_model):
    process_file([str(tmp_path / "missing.wav")], output_dir=tmp_path / "t", output_format="parquet", model=small_model)
    with pytest.raises(SearchError, match="empty table"):
        Index(tmp_path / "t", model=small_model)


def test_cache_reused_and_rebuilt_when_the_table_changes(sounds, small_model, tmp_path):
    paths = sorted(str(p) for p in sounds.glob("*.wav"))
    process_file(paths[:2], output_dir=tmp_path, output_format="parquet", model=small_model)
    first = Index(tmp_path, model=small_model)
    assert len(first) == 2 and isinstance(first.rows.vectors, np.memmap)
    stamp = (first.rows.cache / "vectors.bin").stat().st_mtime_ns
    assert (Index(tmp_path, model=small_model).rows.cache / "vectors.bin").stat().st_mtime_ns == stamp
    time.sleep(0.01)
    process_file(paths, output_dir=tmp_path, output_format="parquet", model=small_model)
    again = Index(tmp_path, model=small_model)
    assert len(again) == 4
    assert os.path.basename(again.search([paths[3]], top_k=1)[0][0].path) == os.path.basename(paths[3])


def test_old_npz_without_settings_warns(sounds, small_model, tmp_path):
    process_file([str(sounds / "mid.wav")], output_dir=tmp_path, model=small_model)
    f = next(tmp_path.glob("*.npz"))
    z = dict(np.load(f))
    z.pop("settings", None)
    np.savez(f, **z)
    with pytest.warns(UserWarning, match="carry no settings"):
        Index(tmp_path, model=small_model, dtype="float16")


def test_exact_top_chunks_match_one_block():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:5] + 0.1 * rng.standard_normal((5, 16)).astype(np.float32)
    s1, i1 = exact_top(x, q, 7, chunk=64)
    s2, i2 = exact_top(x, q, 7, chunk=100000)
    assert (i1 == i2).all() and np.allclose(s1, s2)
    assert (i1 == np.argsort(-(q @ x.T), axis=1)[:, :7]).all()


def test_approximate_index_recall_and_saved_beside_the_table(collections, sounds, small_model):
    pytest.importorskip("faiss")
    from coala_embed.ann import ApproximateIndex

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ann = ApproximateIndex.build(x)
    truth = exact_top(x, x[:50], 10)[1]
    got = ann.search(x[:50], 10)[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]) >= 0.95
    index = Index(collections / "pq_clips", model=small_model, method="approximate")
    hits = index.search([str(sounds / "mid.wav")], top_k=2)[0]
    assert os.path.basename(hits[0].path) == "mid.wav"
    assert list(index.rows.cache.glob("ann-audio-*.faiss"))


def test_cli_table_json_csv(collections, sounds, small_model, ckpt_dir):
    runner = CliRunner()
    model_dir = os.path.dirname(small_model.source) if os.path.isfile(str(small_model.source)) else small_model.source
    base = ["search", str(collections / "pq"), "--model", str(model_dir)]
    r = runner.invoke(main, base + [str(sounds / "high.wav"), "-k", "2"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].split() == ["rank", "score", "start", "end", "path"] and lines[1].endswith("high.wav")
    r = runner.invoke(main, base + ["--frames", str(sounds / "high.wav"), f"{sounds / 'low.wav'}@0-3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out) == 2 and set(out[0][0]) == {"path", "score", "start", "end"}
    assert out[1][0]["path"].endswith("low.wav") and out[1][0]["start"] == 0.0
    r = runner.invoke(main, base + ["--text", "tag01", "--csv", "-k", "3"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "query,rank,path,score,start,end" and len(r.output.splitlines()) == 4
    r = runner.invoke(main, ["search", str(collections / "pq"), str(sounds / "high.wav")])  # bundled model
    assert r.exit_code == 1 and "another model" in r.output
    r = runner.invoke(main, base + ["--text", "nothingatall"])
    assert r.exit_code == 1 and "'nothingatall' in 'nothingatall' maps to no tag" in r.output


def test_words_alone_are_ranked_by_the_tag_head(sounds, tmp_path):
    """Words that stand for sound tags: each row's score is what predict_tags(labels=[words]) gives its embedding;
    words for no sound tag (and words with a sound) stay in the aligned space."""
    from coala_embed.tags import tag_scores

    bundled = load_model(device="cpu")
    paths = sorted(str(p) for p in sounds.glob("*.wav"))
    process_file(paths, output_dir=tmp_path / "t", output_format="parquet", frames=True, model=bundled)
    index = Index(tmp_path / "t", model=bundled, frames=True)
    embeddings = np.asarray(index.rows.vectors, np.float32) * index.rows.norms[:, None]
    for words in ("dog barking", "bell"):
        hits = index.search(text=words, top_k=len(index), per_file=len(index))[0]
        _, expected = tag_scores(bundled, embeddings, labels=[words])
        order = np.argsort(-expected[:, 0], kind="stable")
        assert [h.score for h in hits] == pytest.approx(expected[order, 0].tolist(), abs=1e-3)
        assert [(h.path, h.start) for h in hits] == [(index.rows.files[index.rows.owner[i]], index.rows.start[i])
                                                     for i in order]
    assert index.query_vector(Query(text="dog"))[0] == "head"
    assert index.query_vector(Query(text="norseman"))[0] == "aligned"  # a tag, but no sound tag
    assert index.query_vector(Query(paths[0], text="dog"))[0] == "aligned"
    assert len(list(index.rows.cache.glob("head-*.bin"))) == 1
    again = Index(tmp_path / "t", model=bundled, frames=True)
    assert isinstance(again.vectors("head"), np.memmap)  # read from the cache, not computed again
    assert np.array_equal(again.vectors("head"), index.vectors("head"))


def test_arrays_computed_from_the_vectors_follow_the_collection(sounds, small_model, tmp_path):
    """A file re-embedded with other audio keeps the collection's size: the aligned vectors must still be new."""
    from coala_embed import align_audio, get_tag_embedding

    process_file([str(sounds / "low.wav"), str(sounds / "mid.wav")], output_dir=tmp_path / "c", model=small_model)
    process_file([str(sounds / "high.wav")], output_dir=tmp_path / "other", model=small_model)
    first = Index(tmp_path / "c", model=small_model).search(text="tag03", top_k=2)[0]
    time.sleep(0.01)
    (tmp_path / "c" / "low.npz").write_bytes((tmp_path / "other" / "high.npz").read_bytes())
    index = Index(tmp_path / "c", model=small_model)
    hits = index.search(text="tag03", top_k=2)[0]
    a = align_audio(np.array(index.rows.vectors, np.float32), model=small_model)
    t = get_tag_embedding("tag03", model=small_model)
    expected = np.sort((a @ t) / np.linalg.norm(a, axis=1) / np.linalg.norm(t))[::-1]
    assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-4)
    assert [h.score for h in hits] != pytest.approx([h.score for h in first], abs=1e-4)
    assert len(list(index.rows.cache.glob("aligned-*.bin"))) == 1


def test_digital_silence_is_never_found_by_words(sounds, tmp_path):
    import soundfile as sf

    bundled = load_model(device="cpu")
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "silence.wav", np.zeros(22050, np.float32), 22050)
    paths = sorted(str(p) for p in sounds.glob("*.wav")) + [str(tmp_path / "in" / "silence.wav")]
    process_file(paths, output_dir=tmp_path / "t", output_format="parquet", model=bundled)
    index = Index(tmp_path / "t", model=bundled)
    for words in ("wolf", "canidae, dogs, wolves", "norseman"):  # the head's first tags for silence; an aligned word
        hits = index.search(text=words, top_k=len(index))[0]
        assert "silence.wav" not in [os.path.basename(h.path) for h in hits]
    assert os.path.basename(index.search([paths[-1]], top_k=1)[0][0].path) == "silence.wav"  # by sound, it is there
