"""What an evaluation shows: progress on stderr, the markdown table of results.md, the accuracy figure
and the t-SNE map."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def fmt_acc(r: dict | None) -> str:
    return "n/a" if r is None else f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"


def markdown_table(results: dict) -> str:
    tasks = results["tasks"]
    names = list(results["extractors"])
    lines = []
    head = ["extractor"] + [f"{t} ({v['n_classes']} classes, {v['n_clips']} clips)" for t, v in tasks.items()]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for n in names:
        label = results["extractors"][n].get("label", n)
        lines.append("| " + " | ".join([label] + [fmt_acc(v["accuracy"].get(n)) for v in tasks.values()]) + " |")
    lines.append("| chance (majority class) | " + " | ".join(f"{100 * v['chance']:.1f}" for v in tasks.values()) + " |")
    s = results["settings"]
    lines += ["", f"Accuracy (%), mean ± std over {s['folds']} folds x {len(s['seeds'])} seeds (std over all fold "
              f"accuracies, ddof=0). One vector per clip (mean over patches), StandardScaler fitted on the "
              f"training split, MLPClassifier(hidden_layer_sizes={tuple(s['hidden'])}, max_iter={s['max_iter']}, "
              f"alpha={s['alpha']}, adam, early_stopping=False). "
              + "; ".join(f"{t}: {v['splitter']}" + (f" grouped by `{v['group_column']}`" if v["group_column"] else "")
                          for t, v in tasks.items()) + "."]
    corr = {t: v["correlation"] for t, v in tasks.items() if v.get("correlation")}
    if corr:
        from training.evaluation.features import DESCRIPTORS

        lines += ["", "Canonical correlation similarity (mean canonical correlation; chance level in brackets) "
                  "between embeddings and per-clip mean/var/skewness of each descriptor:", ""]
        head = ["extractor"] + [f"{t}: {d}" for t in corr for d in DESCRIPTORS]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for n in names:
            cells = []
            for t in corr:
                for d in DESCRIPTORS:
                    c = corr[t].get(n, {}).get(d)
                    cells.append("n/a" if c is None else f"{c['cca']:.2f} ({c['cca_null']:.2f})")
            lines.append("| " + " | ".join([results["extractors"][n].get("label", n)] + cells) + " |")
        dims = {t: next(iter(next(iter(c.values())).values()))["dims"][0] for t, c in corr.items() if c}
        lines += ["", "Each side reduced to its top principal components (at most min(32, n_clips/10): "
                  + ", ".join(f"{t}: {d}" for t, d in dims.items()) + ") after standardising columns."]
    return "\n".join(lines) + "\n"


def plot_accuracy(results: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    names = list(results["extractors"])
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(tasks) * max(1, len(names)) ** 0.5 + 2), 4))
    for j, n in enumerate(names):
        means = [100 * results["tasks"][t]["accuracy"].get(n, {}).get("mean", np.nan) for t in tasks]
        stds = [100 * results["tasks"][t]["accuracy"].get(n, {}).get("std", np.nan) for t in tasks]
        xs = np.arange(len(tasks)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=results["extractors"][n].get("label", n))
    for i, t in enumerate(tasks):
        c = 100 * results["tasks"][t]["chance"]
        ax.hlines(c, i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1,
                  label="chance (majority class)" if i == 0 else None)
    ax.set_xticks(np.arange(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    s = results["settings"]
    ax.set_title(f"MLP accuracy, mean ± std over {s['folds']} folds x {len(s['seeds'])} seeds", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tsne_map(vectors: dict[str, np.ndarray], labels: np.ndarray, title: str, path: Path, seed: int = 0) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    classes = sorted(set(labels.tolist()))
    idx = np.asarray([classes.index(c) for c in labels])
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    fig, axes = plt.subplots(1, len(vectors), figsize=(4.2 * len(vectors) + (2.2 if len(classes) <= 20 else 0), 4.2),
                             squeeze=False)
    n = len(labels)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    for ax, (name, X) in zip(axes[0], vectors.items()):
        Z = StandardScaler().fit_transform(X)
        Z = PCA(n_components=min(50, Z.shape[1], n - 1), random_state=seed).fit_transform(Z)
        Y = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z)
        for k, c in enumerate(classes):
            m = idx == k
            ax.scatter(Y[m, 0], Y[m, 1], s=9, color=cmap(k % cmap.N), label=c)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        axes[0][-1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(f"t-SNE of clip embeddings: {title} (perplexity {perplexity:g}, PCA 50 first)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"perplexity": perplexity, "pca_components": min(50, n - 1), "seed": seed}
