"""The reports that decide which model ships: training.zeroshot (class names that are tags, nearest-class
accuracy) and training.paired (fold-by-fold differences)."""
import numpy as np
import pytest

from training.evaluation.zeroshot import class_tag_sets, nearest_class_accuracy, tag_ranks

VOCAB = ["dog", "saw", "door-knock", "rain", "wood"]


def test_exact_names_read_underscores_as_the_vocabulary_writes_them():
    sets = class_tag_sets(["dog", "door_knock", "hand_saw", "crow"], VOCAB, "exact")
    assert sets == {"dog": ["dog"], "door_knock": ["door-knock"]}


def test_words_mode_keeps_the_words_that_are_tags_and_drops_classes_with_none():
    sets = class_tag_sets(["hand_saw", "door_wood_knock", "crow", "Rain"], VOCAB, "words")
    assert sets == {"hand_saw": ["saw"], "door_wood_knock": ["wood"], "Rain": ["rain"]}
    with pytest.raises(ValueError):
        class_tag_sets(["dog"], VOCAB, "fuzzy")


def test_mapped_mode_makes_class_names_into_tags_as_the_corpus_does():
    vocab = ["animal", "seven", "baby", "crying", "spring", "dog"]
    sets = class_tag_sets(["Animals", "7", "crying_baby", "hot_spring", "12", "Liquids"], vocab, "mapped")
    assert sets == {"Animals": ["animal"], "7": ["seven"], "crying_baby": ["crying", "baby"],
                    "hot_spring": ["spring"]}


def test_tag_rank_is_the_best_placed_tag_of_the_class_among_all_tags():
    vocab = ["a", "b", "c", "d"]
    tag_vecs = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    audio = np.array([[1.0, 0.05],    # a first, then b: class x (tag a) rank 1
                      [0.1, 1.0],     # c, b, a, d: class x (tag a) rank 3
                      [0.6, 0.8],     # b, c, a, d: class y (tags d, c) rank 2, c's
                      [5.0, 5.0]])    # label not covered: no rank
    labels = ["x", "x", "y", "z"]
    ranks = tag_ranks(audio, labels, {"x": ["a"], "y": ["d", "c"]}, tag_vecs, vocab)
    assert ranks.tolist() == [1, 3, 2]
    assert tag_ranks(audio, labels, {}, tag_vecs, vocab).size == 0


def test_accuracy_is_cosine_nearest_over_covered_clips_only():
    classes = ["a", "b"]
    class_vecs = np.array([[1.0, 0.0], [0.0, 1.0]])
    audio = np.array([[5.0, 1.0], [0.2, 3.0], [0.1, 0.0], [9.0, 9.5]])
    labels = ["a", "b", "b", "zzz"]           # the third is wrong; the fourth's class is not covered
    assert nearest_class_accuracy(audio, labels, class_vecs, classes) == pytest.approx(2 / 3)
    assert np.isnan(nearest_class_accuracy(audio[:1], ["zzz"], class_vecs, classes))


def test_paired_differences_are_fold_by_fold_and_the_mean_is_over_sets():
    from training.evaluation.paired import paired

    def acc(folds):
        return {"mean": float(np.mean(folds)), "fold_accuracies": {"0": folds[:2], "1": folds[2:]}}
    results = {"tasks": {
        "s1": {"accuracy": {"new": acc([0.6, 0.5, 0.7, 0.4]), "old": acc([0.5, 0.5, 0.6, 0.5])}},
        "s2": {"accuracy": {"new": acc([0.2, 0.2, 0.2, 0.2]), "old": acc([0.3, 0.3, 0.3, 0.3])}},
        "s3": {"accuracy": {"old": acc([0.9, 0.9, 0.9, 0.9])}},   # not scored for "new": left out
    }}
    r = paired(results, "new", "old")
    assert set(r["sets"]) == {"s1", "s2"}
    s1 = r["sets"]["s1"]
    assert s1["diff"] == pytest.approx(2.5) and (s1["wins"], s1["losses"], s1["n"]) == (2, 1, 4)
    assert r["sets"]["s2"]["diff"] == pytest.approx(-10.0) and r["sets"]["s2"]["se"] == pytest.approx(0.0)
    assert r["mean_a"] == pytest.approx(100 * (0.55 + 0.2) / 2) and r["mean_b"] == pytest.approx(100 * (0.525 + 0.3) / 2)
