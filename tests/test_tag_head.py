"""The tag head (coala_embed.tag_head): folded exactly, verified like the weights, and what predict_tags
ranks the sound tags by; the cosine of the aligned space where there is none or it does not apply."""
import json
import shutil

import numpy as np
import pytest

import coala_embed
from coala_embed.checkpoint import CheckpointError, bundled_weights_dir, sha256_file
from coala_embed.tag_head import TAG_HEAD_NAME, TagHead, fold
from coala_embed.tags import tag_scores


@pytest.fixture(scope="module")
def bundled():
    return coala_embed.load_model(device="cpu")


def _cosines(model, means, names):
    a = coala_embed.align_audio(means, model)
    t = coala_embed.get_tag_embedding([[n] for n in names], model)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T


def test_the_folded_head_is_the_standardised_classifier_less_the_prior():
    rng = np.random.default_rng(0)
    d, hidden, n_tags = 12, 7, 5
    w1, b1 = rng.standard_normal((hidden, d)), rng.standard_normal(hidden)
    w2, b2 = rng.standard_normal((n_tags, hidden)), rng.standard_normal(n_tags)
    mean, std, prior = rng.standard_normal(d), rng.uniform(0.1, 3, d), rng.standard_normal(n_tags)
    x = rng.standard_normal((9, d)) * 2 + 1
    direct = np.maximum((x - mean) / std @ w1.T + b1, 0) @ w2.T + b2 - prior
    from safetensors.numpy import load, save

    state = load(save(fold(w1, b1, w2, b2, mean, std, prior)))  # as written to and read from the file
    head = TagHead.from_state(state, list("abcde"), d)
    assert np.allclose(head.scores(x), direct, atol=1e-4)
    with pytest.raises(ValueError, match="w2 has shape"):
        TagHead.from_state(fold(w1, b1, w2, b2, mean, std, prior), list("abcd"), d)


def test_the_mean_of_heads_is_one_head_scoring_their_mean():
    from training.trainer.tag_head import mean_of

    rng = np.random.default_rng(1)
    d, n_tags = 6, 4
    states = [{"w1": rng.standard_normal((d, h)), "b1": rng.standard_normal(h), "w2": rng.standard_normal((h, n_tags)),
               "b2": rng.standard_normal(n_tags)} for h in (3, 5, 3)]
    heads = [TagHead.from_state(s, list("abcd"), d) for s in states]
    x = rng.standard_normal((7, d))
    mean = TagHead.from_state(mean_of(states), list("abcd"), d)
    assert mean.w1.shape == (d, 11)
    assert np.allclose(mean.scores(x), np.mean([h.scores(x) for h in heads], axis=0), atol=1e-5)


def test_the_bundled_head_ranks_the_sound_tags_and_labels(bundled):
    head = bundled.tag_head
    assert head is not None and head.tags == bundled.vocabulary.sound_tags
    sr = 22050
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)
    mean = coala_embed.get_embedding(y, sr, model=bundled)[None]
    scores = head.scores(mean)[0]
    top = coala_embed.predict_tags(y, sr, top_k=5, model=bundled)
    assert [t for t, _ in top] == [head.tags[i] for i in np.argsort(-scores, kind="stable")[:5]]
    assert np.allclose([s for _, s in top], np.sort(scores)[::-1][:5], atol=1e-5)
    # a label scores as the mean of the sound tags it stands for
    labels = coala_embed.predict_tags(y, sr, top_k=2, model=bundled, labels=["puppy barking", "siren"])
    used = coala_embed.resolve_tags(["puppy barking", "siren"], model=bundled)
    expected = {w: np.mean([scores[head.tags.index(t)] for t in tags if t in head.tags]) for w, tags in used.items()}
    assert {w: pytest.approx(s, abs=1e-5) for w, s in labels} == expected
    # all tags, sound or not: the cosine of the aligned space
    every = coala_embed.predict_tags(y, sr, top_k=1000, model=bundled, all_tags=True)
    cos = _cosines(bundled, mean, bundled.tags)[0]
    assert sorted(every) == sorted(zip(bundled.tags, map(float, cos)))
    names, no_head = tag_scores(bundled, mean, use_head=False)
    assert names == bundled.vocabulary.sound_tags and np.allclose(no_head, _cosines(bundled, mean, names))


def test_a_checkpoint_without_a_head_ranks_by_cosine(tmp_path, bundled):
    folder = tmp_path / "nohead"
    shutil.copytree(bundled_weights_dir(), folder)
    config = json.loads((folder / "config.json").read_text())
    for key in ("tag_head_file", "tag_head_sha256", "tag_head"):
        config.pop(key)
    (folder / "config.json").write_text(json.dumps(config))
    model = coala_embed.load_model(folder, device="cpu")
    assert model.tag_head is None
    y = 0.1 * np.random.default_rng(2).standard_normal(22050)
    tags = coala_embed.predict_tags(y, 22050, top_k=3, model=model)
    cos = _cosines(model, coala_embed.get_embedding(y, 22050, model=model)[None], model.vocabulary.sound_tags)[0]
    assert np.allclose([s for _, s in tags], np.sort(cos)[::-1][:3], atol=1e-6)


def test_a_head_restricted_to_a_rebuilt_vocabulary_keeps_its_other_outputs(tmp_path, bundled):
    """training.tag_head --restrict: tags a rebuilt vocabulary no longer calls sounds leave the head, the rest
    score exactly as before; a sound tag the head never scored is refused (that needs a fit)."""
    from coala_embed.checkpoint import record_file
    from training import tag_head

    folder = tmp_path / "w"
    shutil.copytree(bundled_weights_dir(), folder)
    vocabulary = json.loads((folder / "vocabulary.json").read_text())
    dropped = [vocabulary["sound_tags"]["Animal"].pop(1), vocabulary["sound_tags"]["Music"].pop(0)]
    vocabulary["other_tags"] += dropped
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary))
    record_file(folder, "vocabulary", folder / "vocabulary.json")
    assert tag_head.main(["--weights", str(folder), "--restrict"]) == 0
    model = coala_embed.load_model(folder, device="cpu")
    assert model.tag_head.tags == model.vocabulary.sound_tags and not set(dropped) & set(model.tag_head.tags)
    x = np.random.default_rng(3).standard_normal((4, bundled.tag_head.w1.shape[0])).astype(np.float32)
    columns = [bundled.tag_head.tags.index(t) for t in model.tag_head.tags]
    assert np.array_equal(model.tag_head.scores(x), bundled.tag_head.scores(x)[:, columns])
    assert sorted(model.config["tag_head"]["provenance"]["restricted"][-1]["dropped"]) == sorted(dropped)
    vocabulary["sound_tags"]["Music"].insert(0, dropped[1])  # back among the sound tags: the head lost it
    vocabulary["other_tags"].remove(dropped[1])
    (folder / "vocabulary.json").write_text(json.dumps(vocabulary))
    record_file(folder, "vocabulary", folder / "vocabulary.json")
    with pytest.raises(SystemExit, match=f"scores no {dropped[1]}"):
        tag_head.main(["--weights", str(folder), "--restrict"])


def test_a_tampered_or_misshapen_head_is_refused(tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(bundled_weights_dir(), folder)
    path = folder / TAG_HEAD_NAME
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        coala_embed.load_model(folder, device="cpu")
    from safetensors.numpy import save

    path.write_bytes(save({k: np.zeros((3, 3), np.float32) for k in ("w1", "b1", "w2", "b2")}))
    config = json.loads((folder / "config.json").read_text())
    config["tag_head_sha256"] = sha256_file(path)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="malformed tag head.*w1 has shape"):
        coala_embed.load_model(folder, device="cpu", backend="onnx")


def test_cli_tags_per_patch_as_csv_and_json(tmp_path, bundled):
    """--frames: one row per time range (a clip shorter than a patch has one: its placements' mean), scored as
    predict_tags scores that range's embedding; --csv and --json carry the same numbers as the text."""
    import csv
    import io

    from click.testing import CliRunner

    from coala_embed.cli import main
    from coala_embed.tags import rank_tags
    from conftest import write_wav

    long, short = write_wav(tmp_path / "long.wav", 7.0, freq=300), write_wav(tmp_path / "short.wav", 1.0, freq=900)
    run = CliRunner().invoke
    r = run(main, ["tags", long, short, "--frames", "--csv", "-k", "3"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["path", "start", "end", "rank", "tag", "score"]
    ranges = {p: sorted({(float(x["start"]), float(x["end"])) for x in rows if x["path"] == p and x["start"]})
              for p in (long, short)}
    ps = bundled.frontend.patch_seconds
    assert [s for s, _ in ranges[long][:3]] == pytest.approx([0, ps, 2 * ps], abs=0.02)  # centres +- half a patch
    assert ranges[short] == [(0.0, 1.0)]
    (_, emb, _, _), = coala_embed.embed_files([long], model=bundled)
    for i, expected in enumerate(rank_tags(bundled, emb[:3], 3)):
        got = [(x["tag"], float(x["score"])) for x in rows if x["path"] == long and x["start"]
               and abs(float(x["start"]) - ranges[long][i][0]) < 1e-6]
        assert [t for t, _ in got] == [t for t, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-3)
    whole = [(x["tag"], x["rank"]) for x in rows if x["path"] == short and not x["start"]]
    r = run(main, ["tags", long, short, "--frames", "--json", "-k", "3"])
    items = json.loads(r.stdout)
    assert [i["path"] for i in items] == [long, short] and [(t, str(k)) for k, (t, _) in
                                                           enumerate(items[1]["tags"], 1)] == whole
    assert len(items[0]["frames"]) == len(ranges[long]) and items[1]["frames"][0]["tags"] == items[1]["tags"]
    r = run(main, ["tags", long, "-k", "2"])
    assert r.stdout.count("\n") == 1 and r.stdout.startswith(f"{long}\t")


def test_digital_silence_has_no_tags(tmp_path, bundled):
    """Zeros reach the log-mel floor, whose embedding is one vector: the head ranks `wolf` first for it. A
    silent clip or patch gets no tags, whatever the backend or precision; quiet noise (scaled up) still does."""
    from click.testing import CliRunner

    from coala_embed.cli import main
    from coala_embed.tag_output import SILENCE
    from coala_embed.tags import silent

    sr = 22050
    assert coala_embed.predict_tags(np.zeros(sr), sr, model=bundled) == []
    assert coala_embed.predict_tags(np.zeros(3 * sr), sr, model=bundled, precision="bf16", all_tags=True) == []
    assert coala_embed.predict_tags(np.zeros(sr), sr, backend="onnx") == []
    assert coala_embed.predict_tags(np.zeros(sr), sr, model=bundled, labels=["dog", "norseman"]) == []
    assert len(coala_embed.predict_tags(1e-6 * np.random.default_rng(0).standard_normal(sr), sr, model=bundled)) == 10
    tone_then_silence = np.concatenate([0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr), np.zeros(6 * sr)])
    patches = coala_embed.get_embedding(tone_then_silence, sr, model=bundled, frames=True)
    patches = patches[0] if isinstance(patches, tuple) else patches
    assert silent(bundled, patches).tolist() == [False, False, True, True]
    import soundfile as sf

    sf.write(tmp_path / "gap.wav", tone_then_silence.astype(np.float32), sr)
    sf.write(tmp_path / "silence.wav", np.zeros(sr, np.float32), sr)
    r = CliRunner().invoke(main, ["tags", str(tmp_path / "gap.wav"), str(tmp_path / "silence.wav"), "--frames", "-k", "2"])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and [line.endswith(SILENCE) for line in lines] == [False, False, False, True, True, True, True]
