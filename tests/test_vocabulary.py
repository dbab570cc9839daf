"""Words onto tags: resolving words and phrases, sound tags first, the checkpoint's vocabulary.json
(verified by sha256), the CLI's --all-tags, --list-tags and --labels, and the shipped table."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import coala_embed
from coala_embed.checkpoint import CheckpointError, bundled_weights_dir, sha256_file
from coala_embed.cli import main
from coala_embed.vocabulary import UnmappedWords, Vocabulary

from conftest import TAGS, tone, write_wav

SOUND = {"Animal": ["tag01", "tag02", "tag03"], "Music": ["tag05", "tag07"]}
WORDS = {"puppy": ["tag01", "tag02"], "car horn": ["tag05"], "goose": ["tag03"], "geese": ["tag03"]}


def write_vocabulary(folder, sound=SOUND, words=WORDS, tags=TAGS, tag_sets=None):
    listed = {t for group in sound.values() for t in group}
    data = {"format": "coala-embed-vocabulary", "format_version": 1, "licences": {"ontology": "CC BY-SA 4.0"},
            "sound_tags": sound, "other_tags": [t for t in tags if t not in listed], "words": words}
    if tag_sets is not None:
        data["tag_sets"] = tag_sets
    (folder / "vocabulary.json").write_text(json.dumps(data))
    config = json.loads((folder / "config.json").read_text())
    config.update(vocabulary_file="vocabulary.json", vocabulary_sha256=sha256_file(folder / "vocabulary.json"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def vocab_dir(ckpt_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab") / "ckpt"
    shutil.copytree(ckpt_dir, folder)
    return write_vocabulary(folder)


@pytest.fixture(scope="module")
def vmodel(vocab_dir):
    return coala_embed.load_model(vocab_dir, device="cpu")


def test_resolving_words_and_phrases():
    v = Vocabulary(TAGS, SOUND, WORDS)
    assert v.resolve("tag10") == ["tag10"]  # a tag stays itself, sound tag or not
    assert v.resolve("Puppy") == v.resolve("puppies") == ["tag01", "tag02"]  # case and simple plurals
    assert v.resolve("geese") == ["tag03"]  # an irregular plural is in the table
    assert v.resolve("car horns") == ["tag05"]  # two words as a whole, before each word alone
    assert v.resolve("puppy on a car horn") == ["tag01", "tag02", "tag05"]  # 'on' and 'a' name nothing
    assert v.resolve("tag04_tag09") == ["tag04", "tag09"]
    with pytest.warns(UnmappedWords, match="'kazoo' in 'puppy kazoo' maps to no tag.*stands for tag01, tag02"):
        assert v.resolve("puppy kazoo") == ["tag01", "tag02"]  # a phrase's other words still count
    with pytest.raises(ValueError, match="'kazoo', 'ocarina' in 'kazoo ocarina'"):
        v.resolve("kazoo ocarina")
    with pytest.raises(ValueError, match="'kazoo' in 'kazoo'"):
        v.resolve("kazoo")
    with pytest.raises(ValueError, match="no words"):
        v.resolve(" , ")
    with pytest.raises(ValueError, match="maps to no tag"):
        v.resolve("on the")
    assert v.sound_tags == ["tag01", "tag02", "tag03", "tag05", "tag07"]
    assert Vocabulary.plain(TAGS).sound_tags == TAGS and Vocabulary.plain(TAGS).lookup("puppy") is None
    # a tag spelt with spaces, hyphens or commas (the AudioSet ontology's names) is itself, not its words
    named = Vocabulary.plain(["source-ambiguous sounds", "bee, wasp, etc.", "dog"])
    assert named.resolve("Source-ambiguous sounds") == ["source-ambiguous sounds"]
    assert named.resolve("bee, wasp, etc.") == ["bee, wasp, etc."]


def test_a_model_without_the_file_uses_its_raw_tags(model):
    assert model.vocabulary.sound_tags == TAGS and model.vocabulary.words == {}
    with pytest.raises(ValueError, match="'puppy'"):
        coala_embed.get_tag_embedding("puppy", model=model)


def test_words_embed_as_the_tags_they_resolve_to(vmodel):
    assert coala_embed.resolve_tags(["puppy", "tag07 car horn"], model=vmodel) == \
        {"puppy": ["tag01", "tag02"], "tag07 car horn": ["tag07", "tag05"]}
    np.testing.assert_allclose(coala_embed.get_tag_embedding("puppy", model=vmodel),
                               coala_embed.get_tag_embedding(["tag01", "tag02"], model=vmodel), atol=1e-6)
    vecs, used = coala_embed.get_tag_embedding([["puppy"], ["car horn", "tag10"]], model=vmodel, return_tags=True)
    assert vecs.shape == (2, 1152) and used == {"puppy": ["tag01", "tag02"], "car horn": ["tag05"], "tag10": ["tag10"]}
    np.testing.assert_allclose(vecs[1], coala_embed.get_tag_embedding(["tag05", "tag10"], model=vmodel), atol=1e-6)


def test_only_sound_tags_are_ranked_unless_all_tags(vmodel):
    y = tone(2.0, 22050)
    ranked = coala_embed.predict_tags(y, 22050, top_k=20, model=vmodel)
    assert sorted(t for t, _ in ranked) == sorted(vmodel.vocabulary.sound_tags)
    everything = coala_embed.predict_tags(y, 22050, top_k=20, model=vmodel, all_tags=True)
    assert sorted(t for t, _ in everything) == sorted(TAGS)
    scores = dict(everything)
    assert all(abs(scores[t] - s) < 1e-5 for t, s in ranked)  # the same scores, fewer candidates
    labelled = coala_embed.predict_tags(y, 22050, top_k=5, model=vmodel, labels=["puppy", "tag10"])
    assert [label for label, _ in labelled] in (["puppy", "tag10"], ["tag10", "puppy"])


def test_a_tags_vector_is_formed_from_the_training_tag_sets_that_hold_it(ckpt_dir, tmp_path):
    """With the training clips' tag sets in vocabulary.json, a tag's vector is the unit mean of the unit
    vectors of the sets holding it (a tag in none keeps its lone vector); a set of tags is the mean of its
    tags' vectors; numpy (onnx backend) and torch agree; an index outside the tags is refused."""
    import torch

    folder = tmp_path / "ckpt"
    shutil.copytree(ckpt_dir, folder)
    sets = [[1, 2], [1, 3, 4], [4], [2, 5]]
    write_vocabulary(folder, tag_sets=sets)
    m = coala_embed.load_model(folder, device="cpu")
    assert m.vocabulary.tag_sets == sets

    def aligned(rows):  # the tag encoder and affine layer on multi-hot rows, straight from the network
        x = torch.zeros(len(rows), len(TAGS))
        for r, cols in enumerate(rows):
            x[r, cols] = 1
        with torch.no_grad():
            v = m.net.tag_affine(m.net.tag_encoder(x)).numpy()
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    set_vecs = aligned(sets)
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    tag01 = unit(set_vecs[0] + set_vecs[1])
    np.testing.assert_allclose(coala_embed.get_tag_embedding("tag01", model=m), tag01, atol=1e-5)
    np.testing.assert_allclose(coala_embed.get_tag_embedding("tag04", model=m), unit(set_vecs[1] + set_vecs[2]), atol=1e-5)
    np.testing.assert_allclose(coala_embed.get_tag_embedding("tag09", model=m), aligned([[9]])[0], atol=1e-5)  # in no set
    np.testing.assert_allclose(coala_embed.get_tag_embedding(["tag01", "tag09"], model=m),
                               (tag01 + aligned([[9]])[0]) / 2, atol=1e-5)
    # without the sets: the multi-hot through the tag encoder, as before
    plain = coala_embed.load_model(ckpt_dir, device="cpu")
    np.testing.assert_allclose(unit(coala_embed.get_tag_embedding(["tag01", "tag02"], model=plain)),
                               aligned([[1, 2]])[0], atol=1e-5)
    onnx = coala_embed.load_model(folder, backend="onnx")
    np.testing.assert_allclose(coala_embed.get_tag_embedding([["tag01"], ["tag04", "tag09"]], model=onnx),
                               coala_embed.get_tag_embedding([["tag01"], ["tag04", "tag09"]], model=m), atol=1e-5)
    write_vocabulary(folder, tag_sets=[[1, len(TAGS)]])
    with pytest.raises(CheckpointError, match="outside the model's"):
        coala_embed.load_model(folder, device="cpu")


def test_the_vocabulary_is_verified(vocab_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(vocab_dir, bad)
    with open(bad / "vocabulary.json", "a") as f:
        f.write(" ")
    with pytest.raises(CheckpointError, match="does not match"):
        coala_embed.load_model(bad, device="cpu")
    other = tmp_path / "other"
    shutil.copytree(vocab_dir, other)
    write_vocabulary(other, words={"puppy": ["dog"]})  # a tag the model does not have
    with pytest.raises(CheckpointError, match="not the model's"):
        coala_embed.load_model(other, backend="onnx")


def cli(*args):
    return CliRunner().invoke(main, ["tags", *map(str, args), "--device", "cpu", "--backend", "torch"],
                              catch_exceptions=False)


def test_cli_tags_list_tags_and_labels(vocab_dir, tmp_path):
    write_wav(tmp_path / "a.wav", seconds=2.0)
    r = cli(tmp_path / "a.wav", "--model", vocab_dir, "-k", "20")
    assert r.exit_code == 0, r.output
    assert sorted(t.split(" (")[0] for t in r.stdout.split("\t")[1].split(", ")) == \
        sorted(SOUND["Animal"] + SOUND["Music"])
    r = cli(tmp_path / "a.wav", "--model", vocab_dir, "-k", "20", "--all-tags")
    assert len(r.stdout.split("\t")[1].split(", ")) == 20
    r = cli("--list-tags", "--model", vocab_dir)
    assert r.stdout.splitlines() == ["Animal (3):", "  tag01", "  tag02", "  tag03", "Music (2):", "  tag05", "  tag07"]
    r = cli("--list-tags", "--all-tags", "--model", vocab_dir)
    assert r.stdout.splitlines()[7] == "Other tags (not sounds) (15):" and len(r.stdout.splitlines()) == 23
    r = cli(tmp_path / "a.wav", "--model", vocab_dir, "--labels", "puppy, car horn,tag10")
    assert r.exit_code == 0, r.output
    assert "puppy: tag01, tag02\ncar horn: tag05\ntag10: tag10\n" in r.stderr
    assert sorted(t.split(" (")[0] for t in r.stdout.split("\t")[1].split(", ")) == ["car horn", "puppy", "tag10"]
    r = cli(tmp_path / "a.wav", "--model", vocab_dir, "--labels", "puppy,kazoo")
    assert r.exit_code == 2 and "'kazoo'" in r.output
    r = cli(tmp_path / "a.wav", "--model", vocab_dir, "--labels", "puppy,car horn by a kazoo")  # one word left out
    assert r.exit_code == 0, r.output
    assert r.stderr.count("warning: 'kazoo' in 'car horn by a kazoo' maps to no tag of this model: left out") == 1
    assert "car horn by a kazoo: tag05\n" in r.stderr and "UnmappedWords" not in r.stderr


# -- the shipped table ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    folder = bundled_weights_dir()
    config = json.loads((folder / "config.json").read_text())
    if not config.get("vocabulary_file"):
        pytest.skip("the bundled weights have no vocabulary.json")
    return folder, config, json.loads((folder / config["vocabulary_file"]).read_text())


def test_shipped_vocabulary_is_recorded_and_fits_the_tags(shipped):
    folder, config, data = shipped
    assert sha256_file(folder / config["vocabulary_file"]) == config["vocabulary_sha256"]
    sound = [t for group in data["sound_tags"].values() for t in group]
    assert sorted(sound + data["other_tags"]) == sorted(config["tags"]) and not set(sound) & set(data["other_tags"])
    assert {t for tags in data["words"].values() for t in tags} <= set(sound)
    assert not set(data["words"]) & set(config["tags"])
    assert all(1 <= len(tags) <= 3 for tags in data["words"].values())
    assert "CC BY-SA 4.0" in data["licences"]["ontology"] and "WordNet" in data["licences"]["wordnet"]
    # the issue: names, places and game words of file paths are not sound tags
    assert {"dog", "bark", "piano", "rain", "engine", "note"} <= set(sound)
    assert not {"kenya", "mali", "syllable", "norseman", "hello", "english", "faction"} & set(sound)
    assert not {"death", "die", "pain", "spring"} & set(sound)  # game events, and the season (NOT_SOUND_TAGS)
    # the training clips' tag sets: distinct, each tag in at least one (so every tag's vector comes from them),
    # and the ontology's ancestors travel with a tag as in training ('bark' never came without 'dog')
    sets = [frozenset(config["tags"][i] for i in s) for s in data["tag_sets"]]
    assert len(set(sets)) == len(sets) > 1000 and set().union(*sets) == set(config["tags"])
    assert all("dog" in s and "animal" in s for s in sets if "bark" in s)


def test_shipped_words_resolve(shipped):
    folder, config, data = shipped
    v = Vocabulary.read(folder / config["vocabulary_file"], config["tags"])
    assert v.resolve("dog") == ["dog"]  # a tag of the model
    assert v.resolve("puppy")[0] == "dog"  # not a tag of corpus v5's: the table, most specific first
    assert "bird" in v.resolve("birdsong") and "vehicle" in v.resolve("traffic") and "dog" in v.resolve("hound")
    assert v.resolve("dogs barking") == ["dog", "bark"]
    # a category's ancestors give their whole-name tags; a lemma counts only in one of its common senses
    assert v.resolve("vacuum cleaner")[0] == "domestic sounds, home sounds"
    # a word that alone means the category its name begins with (NAME_FIRST_WORDS), none other
    assert v.resolve("vacuum") == v.resolve("vacuum cleaner") and v.resolve("police")[:2] == ["emergency vehicle", "siren"]
    assert "sad" not in data["words"] and "smoke" not in data["words"]
    assert v.resolve("sneeze") == ["respiratory sounds", "human sounds"]
    assert "idea" not in data["words"] and "head" not in data["words"].get("toilet", [])
    # a sense too general for any three tags below it maps to none of them (0.10: object -> ice, beach, cave;
    # device -> alarm, catapult, fan; being -> animal, person, double), and its rarer senses are not used
    for broad in ("object", "structure", "device", "stuff", "being", "happening", "container"):
        assert broad not in data["words"], (broad, data["words"].get(broad))
    assert data["words"]["percussion instrument"][:2] == ["instrument", "percussion"]
    assert data["words"]["feline"] == ["cat", "leopard", "lion"] and data["words"]["drink"] == ["liquid"]
