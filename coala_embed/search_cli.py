"""`coala-embed search` and `coala-embed map` (registered on coala_embed.cli.main). Heavy imports stay lazy."""
from __future__ import annotations

import csv
import sys

import click

SETTINGS = {"help_option_names": ["-h", "--help"]}


@click.command("search", context_settings=SETTINGS)
@click.argument("collection")
@click.argument("queries", nargs=-1)
@click.option("-t", "--text", help='Words to search for ("dog bark"), through the tag side; with QUERIES, '
                                    "combined with each of them.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Hits per query.")
@click.option("--frames", is_flag=True, help="Search patches (tables made with --frames, or .npz) and report where "
                                              "in each file.")
@click.option("--per-file", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --frames: at most this many places of one file among the hits.")
@click.option("--json", "fmt", flag_value="json", help="An array of {path, score, start, end} (one per query).")
@click.option("--csv", "fmt", flag_value="csv", help="CSV with a header: query, rank, path, score, start, end.")
@click.option("--exact", "method", flag_value="exact", help="Exact search whatever the size.")
@click.option("--approximate", "method", flag_value="approximate",
              help="The approximate index (faiss-cpu; the default above 250,000 vectors).")
@click.option("--model", "model_source", default=None, help="The model that made the collection (default: bundled).")
@click.option("--device", default=None, help="Device for embedding the queries.")
def search_command(collection, queries, text, top_k, frames, per_file, fmt, method, model_source, device):
    """Find the sounds of COLLECTION most like QUERIES and/or words.

    COLLECTION is what coala-embed wrote: a Parquet table (file or folder of shards) or a folder of .npz.
    Each QUERY is an audio file, or a time range of one (`file.wav@12.5-15`, `file.wav@60-`); `--text`
    searches by words (`--text "dog bark"`). Scores are cosine similarities, except for words alone that the
    model's tag head scores: their log-odds ratio, as `coala-embed tags --labels` gives it. What is computed
    from the vectors is cached in COLLECTION's `.coala-search/` folder, rebuilt when the collection changes.
    """
    from .search import Index, SearchError, hits_json

    if not queries and text is None:
        raise click.UsageError("give QUERY files and/or --text WORDS")
    try:
        index = Index(collection, model=model_source, frames=frames, method=method or "auto", device=device)
        results = index.search(queries, text=text, top_k=top_k, per_file=per_file)
    except (SearchError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    labels = [q for q in queries] or [f'"{text}"']
    if text is not None and queries:
        labels = [f'{q} + "{text}"' for q in queries]
    if fmt == "json":
        click.echo(hits_json(results, len(results)))
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["query", "rank", "path", "score", "start", "end"])
        for label, hits in zip(labels, results):
            for r, h in enumerate(hits, 1):
                w.writerow([label, r, h.path, f"{h.score:.4f}", _num(h.start), _num(h.end)])
    else:
        for n, (label, hits) in enumerate(zip(labels, results)):
            if len(results) > 1:
                click.echo(("\n" if n else "") + f"# {label}")
            click.echo(_table(hits))


def _num(x):
    return "" if x is None else f"{x:.2f}"


def _table(hits) -> str:
    rows = [("rank", "score", "start", "end", "path")]
    rows += [(str(r), f"{h.score:.4f}", _num(h.start), _num(h.end), h.path) for r, h in enumerate(hits, 1)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


@click.command("map", context_settings=SETTINGS)
@click.argument("collection")
@click.option("-o", "--output", default="map.html", show_default=True, help="The HTML page to write.")
@click.option("--png", default=None, help="Also write a picture of the map (matplotlib).")
@click.option("--color-by", type=click.Choice(["auto", "label", "folder", "tag"]), default="auto", show_default=True,
              help="auto: label with --labels, else the parent folder when there are several, else the top tag.")
@click.option("--labels", "labels_csv", default=None, help="CSV whose first column names files (path or file name) "
                                                           "and with a label column.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--audio-root", default=None, help="Folder the table's paths (or the .npz layout) are relative to.")
@click.option("--projection", type=click.Choice(["auto", "umap", "pca", "tsne"]), default="auto", show_default=True,
              help="auto: UMAP when umap-learn is installed, else PCA.")
@click.option("--model", "model_source", default=None, help="The model that made the collection (default: bundled).")
def map_command(collection, output, png, color_by, labels_csv, label_column, audio_root, projection, model_source):
    """Write a page with one point per file of COLLECTION (a Parquet table or a folder of .npz).

    Hover a point for its file, top tags and duration; click it to play the file; type in the box to keep
    the files whose name, tags or label contain the text. The page opens from disk (plotly.js is inside).
    """
    from .mapview import build_map
    from .search import SearchError

    try:
        info = build_map(collection, output, png=png, model=model_source, color_by=color_by, labels_csv=labels_csv,
                         label_column=label_column, audio_root=audio_root, projection=projection)
    except (SearchError, ImportError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{output}: {info['points']} files ({info['projection']}) in {info['seconds']:.1f} s"
               + (f"; {png}" if png else ""), err=True)
