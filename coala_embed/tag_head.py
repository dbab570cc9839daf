"""The tag head: which sound tags a clip holds, scored from its embedding by a small classifier.

COALA ranks tags by the cosine between a clip's aligned audio vector and each tag's vector. With a corpus
whose everyday sounds are few (221 of 88,746 training patches carry `dog`), that ranking puts the right
tag of a real recording 38th among the sound tags (543 then) on esc50-dev (median). A classifier trained on the
same corpus and the frozen embedding, one hidden layer, ranks better; the bundled head (0.13.0) is the mean
of three such fits (seeds), which rank better together than each alone. Against the cosine, it puts the
right tag 14th instead of 36.5th on esc50-dev, 6th instead of 12th on held-out notes, 21st instead of
58.5th on ysl's field recordings, but 41st against 40th on openclonk's foley (training/EXPERIMENTS.md).
So a checkpoint may carry `tag_head.safetensors` (written by `python -m training.tag_head`); where it
does, `predict_tags`, `coala-embed tags` and search by words rank with it. `get_tag_embedding`, and words
searched together with a sound, stay in the aligned space.

A score is a log-odds ratio: the classifier's logit minus the tag's prior log-odds in the training data,
i.e. how much likelier the tag is for this clip than for a clip at random. Without the prior, frequent
broad tags (`animal`, `speech`) would outrank the rare specific one (`dog`) on nearly every clip. The
embedding's standardisation and the prior are folded into the two layers when the head is written, so
a score is relu(x @ w1 + b1) @ w2 + b2, in numpy (no torch needed).
"""
from __future__ import annotations

import dataclasses

import numpy as np

TAG_HEAD_NAME = "tag_head.safetensors"


@dataclasses.dataclass(frozen=True, eq=False)
class TagHead:
    tags: list[str]  # the tags it scores, in the order of its outputs
    w1: np.ndarray   # (embedding_size, hidden) float32
    b1: np.ndarray   # (hidden,)
    w2: np.ndarray   # (hidden, len(tags))
    b2: np.ndarray   # (len(tags),)

    @classmethod
    def from_state(cls, state: dict, tags: list[str], embedding_size: int) -> TagHead:
        """Checked against the model it belongs to; ValueError says what does not fit."""
        w1, b1, w2, b2 = (np.asarray(state[k], np.float32) for k in ("w1", "b1", "w2", "b2"))
        hidden = w1.shape[1] if w1.ndim == 2 else -1
        expected = {"w1": (embedding_size, hidden), "b1": (hidden,), "w2": (hidden, len(tags)), "b2": (len(tags),)}
        for name, value in zip(expected, (w1, b1, w2, b2)):
            if value.shape != expected[name]:
                raise ValueError(f"tag head tensor {name} has shape {value.shape}, expected {expected[name]} "
                                 f"({embedding_size}-d embeddings, {len(tags)} tags)")
        return cls(list(tags), w1, b1, w2, b2)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, embedding_size) clip embeddings -> (n, len(tags)) float32 log-odds ratios."""
        x = np.asarray(embeddings, np.float32)
        return np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2


def fold(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, mean: np.ndarray, std: np.ndarray,
         prior_logit: np.ndarray) -> dict[str, np.ndarray]:
    """The state of a TagHead equal to, for torch-layout layers (w1: (hidden, D), w2: (T, hidden)),
    relu(((x - mean) / std) @ w1.T + b1) @ w2.T + b2 - prior_logit."""
    scaled = (w1 / std[None, :]).T  # (D, hidden)
    # C order: safetensors writes an array's memory as it lies, so a transposed view would load transposed
    state = {"w1": scaled, "b1": b1 - mean @ scaled, "w2": w2.T, "b2": b2 - prior_logit}
    return {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}
