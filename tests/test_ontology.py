"""The AudioSet ontology as the tags' hierarchy (training/corpus/ontology.py), on a small ontology.json of
the real file's shape; WordNet is left out here (Debian's wordnet-base is not a test dependency)."""
import json

import pytest

from training.corpus.ontology import Ontology, _alternatives

pytest.importorskip("inflect")

ENTRIES = [
    ("/m/animal", "Animal", ["/m/pets", "/m/wild"]),
    ("/m/pets", "Domestic animals, pets", ["/m/dog", "/m/cat"]),
    ("/m/dog", "Dog", ["/m/bark"]),
    ("/m/bark", "Bark", []),
    ("/m/cat", "Cat", []),
    ("/m/wild", "Wild animals", ["/m/canidae", "/m/roar"]),
    ("/m/canidae", "Canidae, dogs, wolves", []),
    ("/m/roar", "Roaring cats (lions, tigers)", []),
    ("/m/human", "Human sounds", ["/m/voice"]),
    ("/m/voice", "Human voice", ["/m/crying"]),
    ("/m/crying", "Crying, sobbing", ["/m/babycry"]),
    ("/m/babycry", "Baby cry, infant cry", []),
    ("/m/things", "Sounds of things", ["/m/vehicle"]),
    ("/m/vehicle", "Vehicle", ["/m/car"]),
    ("/m/car", "Motor vehicle (road)", []),
]


@pytest.fixture
def ontology(tmp_path):
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps([{"id": i, "name": n, "description": "", "child_ids": c, "restrictions": []}
                                for i, n, c in ENTRIES]))
    return Ontology(path)


def test_names_synonyms_and_qualifiers():
    assert _alternatives("Canidae, dogs, wolves") == ["Canidae", " dogs", " wolves"]
    assert _alternatives("Roaring cats (lions, tigers)") == ["Roaring cats ", "lions", " tigers"]
    assert _alternatives("Motor vehicle (road)") == ["Motor vehicle "]


def test_a_word_gets_its_category_and_every_ancestor(ontology):
    tags = ontology.expand(["bark", "loud"])
    assert tags[:2] == ["bark", "loud"]
    assert set(tags[2:]) == {"bark", "dog", "domestic animals, pets", "animal"} - {"bark"}
    assert set(ontology.expand(["wolves"])[1:]) == {"canidae, dogs, wolves", "wild animals", "animal"}
    assert set(ontology.expand(["lion"])[1:]) == {"roaring cats (lions, tigers)", "wild animals", "animal"}
    assert "vehicle" in ontology.expand(["motor vehicle"]) and ontology.expand(["road"]) == ["road"]


def test_every_parent_of_a_category_with_two_parents(tmp_path):
    entries = [{"id": "a", "name": "Music", "child_ids": ["bell"]}, {"id": "b", "name": "Sounds of things", "child_ids": ["bell"]},
               {"id": "bell", "name": "Bell", "child_ids": []}]
    path = tmp_path / "o.json"
    path.write_text(json.dumps(entries))
    assert set(Ontology(path).expand(["bell"])) == {"bell", "music", "sounds of things"}


def test_the_ing_form_and_neighbouring_words(ontology):
    assert "crying, sobbing" in ontology.expand(["cry"])
    pair = ontology.expand(["baby", "cry"])
    assert "baby cry, infant cry" in pair and "human sounds" in pair
    assert ontology.expand(["cry", "baby"]).count("baby cry, infant cry") == 0  # order matters: "cry baby"


def test_words_left_alone(ontology):
    assert ontology.expand(["telephone", "note", "norseman"]) == ["telephone", "note", "norseman"]
    assert ontology.categories_of("norseman") == ()


def test_the_ontologys_own_tags_name_their_category(ontology):
    """A corpus tagged with the ontology carries tags such as 'crying, sobbing': the vocabulary must see
    them as the categories they are (a model trained on such tags lists them as sound tags)."""
    assert ontology.named("crying, sobbing") == ["/m/crying"]
    assert ontology.named("motor vehicle (road)") == ["/m/car"]
    assert ontology.named("canidae, dogs, wolves") == ontology.named("canidae")
    once = ontology.expand(["bark"])
    assert set(ontology.expand(once)) == set(once)  # expanding the expanded tags adds nothing


class _NoWordNet:
    """WordNet knowing no word: the vocabulary builder then uses the ontology's names only."""

    def synsets(self, *args):
        return []


def test_a_words_tags_climb_to_the_tags_its_ancestors_gave_the_corpus(ontology):
    """training.vocabulary: a category's ancestors give the tags the corpus gave their clips, whole names
    included ('domestic animals, pets'), never a single name of theirs ('wolves' of "Canidae, dogs, wolves")."""
    from training.vocabulary import Builder

    ontology.wordnet = _NoWordNet()
    tags = ["bark", "dog", "domestic animals, pets", "animal", "wild animals", "canidae, dogs, wolves", "wolf",
            "crying, sobbing", "crying", "human voice", "human sounds", "norseman"]
    b = Builder(ontology, tags)
    assert "norseman" not in b.sound and "wolf" not in b.category_tags("/m/dog")
    assert b.category_tags("/m/bark") == ["bark", "dog", "domestic animals, pets", "animal"]
    assert b.category_tags("/m/babycry") == ["crying, sobbing", "human voice", "human sounds"]
    assert b.category_tags("/m/crying") == ["crying, sobbing", "crying", "human voice", "human sounds"]
    assert b.category_tags("/m/canidae")[0] == "canidae, dogs, wolves"
