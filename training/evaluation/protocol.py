"""The paper's protocol (sec. 3.2): StandardScaler + MLP on one vector per clip, over stratified
(grouped where a set has groups) k-fold splits repeated over seeds; every extractor sees the same folds."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np


@dataclasses.dataclass
class ClassifierSettings:
    hidden: tuple[int, ...] = (256,)
    max_iter: int = 500
    alpha: float = 1e-4
    learning_rate_init: float = 1e-3
    folds: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)

    def mlp(self, seed: int):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=self.hidden, max_iter=self.max_iter, alpha=self.alpha,
                             learning_rate_init=self.learning_rate_init, early_stopping=False, random_state=seed)


def make_splits(labels: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> tuple[list, str]:
    """(train, test) index pairs: StratifiedGroupKFold when groups are given, else StratifiedKFold;
    shuffled with `seed`. The number of folds is lowered to what the set allows (groups, class sizes)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels)
    x = np.zeros(len(y))
    largest_class = int(np.bincount(np.unique(y, return_inverse=True)[1]).max())
    if groups is not None:
        k = max(2, min(folds, len(set(groups.tolist())), largest_class))
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        split = splitter.split(x, y, groups)
    else:
        k = max(2, min(folds, largest_class))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        split = splitter.split(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only n members"
        pairs = [(tr, te) for tr, te in split if len(te) and len(tr)]
    return pairs, f"{type(splitter).__name__}(n_splits={k}, shuffle=True)"


def _fit_one(X, y, tr, te, settings: "ClassifierSettings", seed: int) -> tuple[int, int, int]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = Pipeline([("scale", StandardScaler()), ("mlp", settings.mlp(seed))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipe.fit(X[tr], y[tr])
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    correct = int((pipe.predict(X[te]) == y[te]).sum())
    return correct, int(pipe.named_steps["mlp"].n_iter_), not_converged


def cross_validate(X: np.ndarray, labels: np.ndarray, splits: dict[int, list], settings: ClassifierSettings,
                   jobs: int = 1) -> dict:
    """Fold accuracies of StandardScaler + MLP over the given splits (one list of folds per seed).
    Each fit is deterministic, so results do not depend on `jobs` (parallel fits via joblib)."""
    from joblib import Parallel, delayed

    y = np.asarray(labels)
    work = [(seed, tr, te) for seed, pairs in splits.items() for tr, te in pairs]
    out = Parallel(n_jobs=jobs)(delayed(_fit_one)(X, y, tr, te, settings, seed) for seed, tr, te in work)
    accs = {seed: [] for seed in splits}
    correct = {seed: 0 for seed in splits}
    for (seed, _, te), (c, _, _) in zip(work, out):
        accs[seed].append(c / len(te))
        correct[seed] += c
    pooled = {seed: correct[seed] / sum(len(te) for _, te in splits[seed]) for seed in splits}
    flat = np.asarray([a for s in accs for a in accs[s]])
    seed_means = np.asarray([np.mean(accs[s]) for s in accs])
    return {"mean": float(flat.mean()), "std": float(flat.std()), "std_of_seed_means": float(seed_means.std()),
            "fold_accuracies": {str(s): accs[s] for s in accs}, "pooled_accuracy": {str(s): pooled[s] for s in pooled},
            "n_fits": int(flat.size), "not_converged": int(sum(o[2] for o in out)),
            "mean_iterations": float(np.mean([o[1] for o in out]))}


def chance_level(labels: np.ndarray) -> float:
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())
