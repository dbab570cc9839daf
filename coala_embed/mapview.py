"""`coala-embed map`: one self-contained HTML page (Plotly) with a point per file of a collection.

Every file is a point of a 2-D projection of its clip embedding (UMAP when umap-learn is installed, else
PCA), coloured by a label, its folder or its top tag. Hovering shows the file, its top tags and its duration;
clicking plays it (an <audio> element on its path relative to the page); a text box keeps the points whose
name, tags or label contain the text. The page embeds plotly.js, so it opens from disk with no server.
`pip install "coala-embed[map]"` (plotly, umap-learn; matplotlib for --png).
"""
from __future__ import annotations

import csv
import html
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

from .collection import AUDIO_EXTENSIONS

TSNE_MAX_POINTS = 2000  # auto projection: t-SNE up to here, UMAP above
SVG_MAX_POINTS = 5000  # above, points are drawn with WebGL (Scattergl) rather than one SVG path each
TAG_ROWS = 4096  # clips ranked at a time for the hover tags: bounded memory on large collections


def project(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates and the method used: 'umap' (umap-learn) or 'tsne' (scikit-learn), both on 50 PCA
    components, or 'pca'. 'auto': t-SNE up to TSNE_MAX_POINTS, UMAP above (t-SNE up to 4x more without
    umap-learn), PCA when neither library is installed."""
    x = np.asarray(x, np.float32)
    n = len(x)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)]), "pca"
    if method == "auto":  # measured (examples/benchmark_search.py, README): t-SNE keeps esc50-dev's neighbours
        method = "pca"     # best and is fast on small maps; at 10k files UMAP takes 13 s once compiled, t-SNE 50 s
        for name, module, fits in (("tsne", "sklearn", n <= TSNE_MAX_POINTS), ("umap", "umap", True),
                                   ("tsne", "sklearn", n <= 4 * TSNE_MAX_POINTS)):
            if fits and importlib.util.find_spec(module) is not None:
                method = name
                break
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False) if n <= 4096 else _randomized_svd(centred, 50, seed)
    reduced = (u * s)[:, :50]
    if method == "pca":
        return reduced[:, :2].astype(np.float32), "pca"
    if method == "tsne":
        from sklearn.manifold import TSNE
        return TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(reduced), "tsne"
    if method == "umap":
        import warnings

        import umap
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine", random_state=seed,
                                init="spectral" if n > 16 else "random")
            return reducer.fit_transform(reduced).astype(np.float32), "umap"
    raise ValueError(f"projection must be 'auto', 'umap', 'pca' or 'tsne', got {method!r}")


def _randomized_svd(x, k, seed):
    from sklearn.utils.extmath import randomized_svd
    u, s, _ = randomized_svd(x, k, random_state=seed)
    return u, s, None


def find_audio(path: str, kind: str, table_dir: Path, audio_root: str | None) -> str | None:
    """The audio file behind a row: a Parquet `path` (absolute, from here, from the table's folder or below
    audio_root), or the audio beside an .npz (same stem) or at its place below audio_root."""
    p = Path(path)
    if kind == "parquet":
        for c in ([p] if p.is_absolute() else [Path(audio_root) / p] if audio_root else [p, table_dir / p]):
            if c.exists():
                return str(c)
        return path
    rel = p.relative_to(table_dir) if table_dir in p.parents else Path(p.name)
    folder = (Path(audio_root) / rel.parent) if audio_root else p.parent
    for ext in AUDIO_EXTENSIONS:
        if (folder / (rel.stem + ext)).exists():
            return str(folder / (rel.stem + ext))
    return None


def read_labels(csv_path, column: str = "label") -> dict:
    """{file name or path: label} from a CSV whose first column names the files (e.g. esc50's labels.csv)."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise ValueError(f"{csv_path} has no column {column!r} (columns: {reader.fieldnames})")
        key = reader.fieldnames[0]
        return {row[key]: row[column] for row in reader}


def _label_of(labels: dict, path: str, audio: str | None):
    for c in (path, audio, Path(path).name, audio and Path(audio).name, Path(path).stem):
        if c and c in labels:
            return labels[c]
    return None


def build_map(collection, out_html, png=None, model=None, color_by: str = "auto", labels_csv=None,
              label_column: str = "label", audio_root=None, projection: str = "auto", top_tags: int = 3,
              title: str | None = None) -> dict:
    """Write the page (and a PNG); returns {'points', 'projection', 'seconds'}."""
    from .collection import sources
    from .search import Index
    from .tags import rank_tags

    t0 = time.perf_counter()
    index = Index(collection, model=model, frames=False, method="exact")
    rows, kind = index.rows, sources(collection)[0]
    table_dir = Path(collection) if Path(collection).is_dir() else Path(collection).parent
    files = [rows.files[f] for f in rows.owner]
    audio = [find_audio(p, kind, table_dir, audio_root) for p in files]
    durations = rows.durations[rows.owner]
    if kind == "npz":
        import soundfile as sf
        durations = np.array([sf.info(a).duration if a else d for a, d in zip(audio, durations)])
    tags = [[] for _ in files]
    if getattr(index.model.net, "has_tag_space", False):  # the sound tags, as `coala-embed tags` ranks them
        tags = [ranked for s in range(0, len(files), TAG_ROWS)
                for ranked in rank_tags(index.model, rows.embeddings(slice(s, s + TAG_ROWS)), top_tags)]
    xy, used = project(np.asarray(rows.vectors, np.float32), projection)
    labels = read_labels(labels_csv, label_column) if labels_csv else None
    if color_by == "auto":
        color_by = "label" if labels else ("folder" if len({str(Path(p).parent) for p in files}) > 1 else "tag")
    if color_by == "label":
        if not labels:
            raise ValueError("--color-by label needs --labels CSV")
        groups = [_label_of(labels, p, a) or "(no label)" for p, a in zip(files, audio)]
    elif color_by == "folder":
        groups = [str(Path(p).parent) for p in files]
    elif color_by == "tag":
        groups = [t[0][0] if t else "(no tags)" for t in tags]
    else:
        raise ValueError(f"color_by must be 'label', 'folder' or 'tag', got {color_by!r}")
    out_dir = Path(out_html).resolve().parent
    points = [{"file": p, "audio": (Path(os.path.relpath(Path(a).resolve(), out_dir)).as_posix() if a else ""),
               "tags": ", ".join(f"{t} ({s:.2f})" for t, s in tg), "duration": (None if not np.isfinite(d) else float(d)),
               "group": g} for p, a, tg, d, g in zip(files, audio, tags, durations, groups)]
    title = title or f"{Path(collection).name}: {len(points)} files ({used.upper()} of coala-embed clip embeddings)"
    Path(out_html).write_text(page(xy, points, title), encoding="utf-8")
    if png:
        save_png(xy, groups, png, title, names=[Path(p).stem for p in files], legend_title=color_by)
    return {"points": len(points), "projection": used, "seconds": time.perf_counter() - t0}


def figure(xy: np.ndarray, points: list, title: str):
    import plotly.graph_objects as go

    scatter = go.Scatter if len(points) <= SVG_MAX_POINTS else go.Scattergl
    fig = go.Figure()
    groups = sorted({p["group"] for p in points})
    for g in groups:
        idx = [i for i, p in enumerate(points) if p["group"] == g]
        custom = [[i, points[i]["file"], points[i]["tags"] or "-",
                   "?" if points[i]["duration"] is None else f"{points[i]['duration']:.2f} s"] for i in idx]
        fig.add_trace(scatter(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=str(g)[:40], customdata=custom,
                              marker={"size": 8 if len(points) < 2000 else 4, "opacity": 0.85},
                              unselected={"marker": {"opacity": 0.06}},
                              hovertemplate="<b>%{customdata[1]}</b><br>tags: %{customdata[2]}<br>"
                                            "duration: %{customdata[3]}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=title, template="plotly_white", hovermode="closest", margin={"l": 20, "r": 20, "t": 50},
                      legend={"itemsizing": "constant"}, showlegend=len(groups) <= 60)
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None, scaleanchor="x")
    return fig


SCRIPT = """
const data = JSON.parse(document.getElementById('coala-map-data').textContent);
const plot = document.getElementById('coala-map'), player = document.getElementById('coala-player');
const now = document.getElementById('coala-playing'), box = document.getElementById('coala-filter');
plot.on('plotly_click', ev => {
  const p = data[ev.points[0].customdata[0]];
  if (!p.audio) { now.textContent = p.file + ': audio file not found'; return; }
  player.src = encodeURI(p.audio); player.play(); now.textContent = p.file;
});
function applyFilter() {
  const q = box.value.trim().toLowerCase();
  let shown = 0;
  const sel = plot.data.map(tr => {
    if (!q) { shown += tr.customdata.length; return null; }
    const keep = [];
    tr.customdata.forEach((c, j) => { const p = data[c[0]];
      if ((p.file + ' ' + p.tags + ' ' + p.group).toLowerCase().includes(q)) keep.push(j); });
    shown += keep.length; return keep;
  });
  Plotly.restyle(plot, {selectedpoints: sel});
  document.getElementById('coala-count').textContent = shown + ' of ' + data.length + ' files';
}
box.addEventListener('input', applyFilter);
const asked = new URLSearchParams(location.hash.slice(1)).get('filter');  // map.html#filter=dog
if (asked) { box.value = asked; applyFilter(); }
"""


def page(xy: np.ndarray, points: list, title: str) -> str:
    """The standalone HTML: plotly.js inline, the points as JSON, a filter box and an audio player."""
    fig = figure(xy, points, title)
    div = fig.to_html(include_plotlyjs=True, full_html=False, div_id="coala-map", default_height="85vh",
                      post_script=SCRIPT, config={"responsive": True})
    data = json.dumps(points).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:8px}} #coala-bar{{display:flex;gap:12px;align-items:center}}
#coala-filter{{width:22em;padding:4px}}</style></head>
<body>
<div id="coala-bar"><input id="coala-filter" type="search" placeholder="filter by tag or file name">
<span id="coala-count">{len(points)} files</span><audio id="coala-player" controls preload="none"></audio>
<span id="coala-playing">click a point to play it</span></div>
<script type="application/json" id="coala-map-data">{data}</script>
{div}
</body></html>
"""


def save_png(xy: np.ndarray, groups: list, png, title: str, max_legend: int = 20, names=None, legend_title=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted(set(groups))
    cmap = plt.get_cmap("tab20" if len(kinds) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(7, 5), dpi=90)
    for i, g in enumerate(kinds):
        idx = [j for j, h in enumerate(groups) if h == g]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=28 if len(xy) < 2000 else 4, color=cmap(i % cmap.N), label=g[:30],
                   alpha=0.85)
    if names is not None and len(names) <= 40:  # a small map: name the points
        for (x, y), name in zip(xy, names):
            ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color="0.3")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if len(kinds) <= max_legend:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False, title=legend_title,
                  title_fontsize=7)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
