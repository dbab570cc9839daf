"""training.zeroshot: which class names are tags, and the nearest-class accuracy."""
import numpy as np
import pytest

from training.zeroshot import class_tag_sets, nearest_class_accuracy

VOCAB = ["dog", "saw", "door-knock", "rain", "wood"]


def test_exact_names_read_underscores_as_the_vocabulary_writes_them():
    sets = class_tag_sets(["dog", "door_knock", "hand_saw", "crow"], VOCAB, "exact")
    assert sets == {"dog": ["dog"], "door_knock": ["door-knock"]}


def test_words_mode_keeps_the_words_that_are_tags_and_drops_classes_with_none():
    sets = class_tag_sets(["hand_saw", "door_wood_knock", "crow", "Rain"], VOCAB, "words")
    assert sets == {"hand_saw": ["saw"], "door_wood_knock": ["wood"], "Rain": ["rain"]}
    with pytest.raises(ValueError):
        class_tag_sets(["dog"], VOCAB, "fuzzy")


def test_accuracy_is_cosine_nearest_over_covered_clips_only():
    classes = ["a", "b"]
    class_vecs = np.array([[1.0, 0.0], [0.0, 1.0]])
    audio = np.array([[5.0, 1.0], [0.2, 3.0], [0.1, 0.0], [9.0, 9.5]])
    labels = ["a", "b", "b", "zzz"]           # the third is wrong; the fourth's class is not covered
    assert nearest_class_accuracy(audio, labels, class_vecs, classes) == pytest.approx(2 / 3)
    assert np.isnan(nearest_class_accuracy(audio[:1], ["zzz"], class_vecs, classes))
