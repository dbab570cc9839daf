"""Command line: `coala-embed [-o DIR] INPUTS...` and `coala-embed tags FILE...`.

    coala-embed audio/*.wav --output-dir feats          # one <stem>.npz per file
    coala-embed corpus/ --output-dir feats --hop-size 0.5
    coala-embed tags dog.wav --top-k 5                  # zero-shot tags

Inputs may be files, folders (searched recursively for audio files) or glob patterns (expanded here
too, so quoted patterns and shells without globbing work; coala_embed.inputs). Files found inside a
folder keep their sub-folder layout under the output folder, so `a/x.wav` and `b/x.wav` do not collide.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .cli_options import common_options, load_for
from .decode import duration_of
from .inputs import expand_inputs, root_of
from .options import EmbedOptions
from .sinks import OUTPUT_FORMATS
from .version import __version__


def _format_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _format_speed(ratio: float) -> str:
    """Audio seconds per wall-clock second, two significant digits below 10x (short runs read 0.4x, not 0x)."""
    return f"{ratio:.2g}x real time" if ratio < 10 else f"{ratio:.0f}x real time"


# ----------------------------------------------------------------------------------------------


class _DefaultGroup(click.Group):
    """A group whose first argument, if it is not a sub-command, goes to the default `embed` command."""

    default_command = "embed"

    def parse_args(self, ctx, args):
        if not args:  # as git and pip do: the help, and the exit status of a usage error
            click.echo(ctx.get_help(), err=True)
            ctx.exit(2)
        if args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = [self.default_command] + list(args)
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write("Usage: coala-embed [OPTIONS] INPUTS...       (embed; -o DIR for the output folder)\n"
                        "       coala-embed tags [OPTIONS] FILES...\n"
                        "       coala-embed tags --list-tags\n"
                        "       coala-embed search COLLECTION [QUERY_FILE[@START-END]...] [--text WORDS]\n"
                        "       coala-embed map COLLECTION -o map.html\n")


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="coala-embed")
def main():
    """COALA audio embeddings (1920-d, from co-aligned audio and tag autoencoders).

    \b
      coala-embed [-o DIR] INPUTS...   embed audio files (the default command)
      coala-embed tags FILES...        print zero-shot tags of audio files
      coala-embed tags --list-tags     print the sound tags the model knows, by category
      coala-embed search COLLECTION    find sounds like a file (or a time range of one), or by words
      coala-embed map COLLECTION       a page with one point per file (hover, play, filter)

    Run `coala-embed COMMAND --help` for the options of each.
    """
    import warnings

    warnings.showwarning = _warn_to_stderr


def _warn_to_stderr(message, category, filename, lineno, file=None, line=None):
    """Warnings (words left out of a phrase, a slow precision) as one line, not Python's source excerpt."""
    click.echo(f"warning: {message}", err=True)


@main.command("embed", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the .npz outputs (created if needed) [default: beside each input].")
@click.option("--suffix", default=None, help="Write <stem>_<suffix>.npz instead of <stem>.npz.")
@click.option("--overwrite", is_flag=True, help="Re-embed files whose output exists (default: skip them).")
@click.option("--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="npz", show_default=True,
              help="One .npz per file, or one Parquet table per shard (--output-dir/embeddings*.parquet, "
                   "needs pyarrow).")
@click.option("--frames", is_flag=True, help="With --format parquet: also store patch embeddings and timestamps.")
@click.option("--shard", default=None, metavar="K/N",
              help="Embed only the K-th (from 0) of N disjoint parts of the sorted inputs "
                   "[default under torchrun: RANK/WORLD_SIZE, on GPU LOCAL_RANK].")
@common_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no per-file messages; errors and summary only.")
def embed_command(inputs, output_dir, suffix, overwrite, output_format, frames, shard, model_source, device, quiet,
                  **option_kw):
    """Embed audio files: INPUTS are files, folders (recursive) or glob patterns.

    Writes one <stem>[_suffix].npz per file holding `embedding` (T, 1920) float32 patch embeddings,
    `timestamps` (T,) patch centres in seconds and `mean` (1920,). Existing outputs are skipped unless
    --overwrite, so an interrupted run resumes; a file changed since is embedded again. With --format
    parquet, one table per shard with a row per file (path, key, size, mtime_ns, status, error, duration,
    embedding), which a re-run completes. Bad files are reported and skipped; a full disk stops the run.
    The exit status is 1 if any input failed, 2 if there was nothing to do.
    """
    from .core import process_file
    from .shard import device_from_env, parse_shard, shard_from_env, shard_indices
    from .sinks import DiskFullError, input_key

    t0 = time.perf_counter()
    if quiet:
        _silence_native_stderr()
    try:
        shard = parse_shard(shard) if shard is not None else shard_from_env()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--shard")
    if output_format == "parquet":
        from .parquet import require_pyarrow

        if output_dir is None:
            raise click.UsageError("--format parquet needs --output-dir (the folder of the table)")
        try:
            require_pyarrow()
        except ImportError as e:
            raise click.ClickException(str(e))
    elif frames:
        raise click.UsageError("--frames is for --format parquet (the .npz files always hold the patch embeddings)")
    files, problems = _expand_or_exit(inputs)
    model = load_for(model_source, device or device_from_env(), option_kw)
    options = EmbedOptions(**option_kw)
    if options.hop_size is not None and not quiet:
        _say_hop_used(options.hop_size, model.frontend)

    # files found in folders keep their sub-folder layout under --output-dir, and are known by that
    # relative path (their key: the folder they were found under is their root); process_file reports
    # two inputs that would still write the same output
    folders = [None if output_dir is None else Path(output_dir) / rel for _, rel in files]
    roots = [root_of(p, rel) for p, rel in files]
    if output_format == "parquet":
        folders = Path(output_dir)
    n_files = len(files) if shard is None else len(shard_indices(
        [input_key(os.path.realpath(p), r) for (p, _), r in zip(files, roots)], shard))  # keys only: no stat
    counts = {"written": 0, "skipped": 0, "failed": len(problems)}
    audio_seconds = 0.0
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=n_files, unit="file", desc="coala-embed", file=sys.stderr, dynamic_ncols=True)

    def on_result(result):
        nonlocal audio_seconds
        counts[result.status] += 1
        if result.status == "written":
            audio_seconds += duration_of(result.path) or 0.0
        if result.status == "failed":
            message = f"failed: {result.error}"
            (bar.write(message, file=sys.stderr) if bar is not None else click.echo(message, err=True))
        if bar is not None:
            bar.update(1)

    try:
        process_file([p for p, _ in files], output_dir=folders, suffix=suffix, overwrite=overwrite, model=model,
                     on_result=on_result, shard=shard, output_format=output_format, frames=frames, roots=roots,
                     options=options)
    except DiskFullError as e:  # stop at the first: every later file would fail the same way
        if bar is not None:
            bar.close()
        click.echo(f"error: {e}; {counts['written']} written before it (only complete files); free space and "
                   "run the same command again to resume", err=True)
        sys.exit(1)
    except (OSError, RuntimeError, ValueError) as e:  # no output folder; a table made otherwise or in use
        raise click.ClickException(str(e))
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        click.echo(f"\ninterrupted: {counts['written']} written so far (only complete files); "
                   "run the same command again to resume", err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()

    elapsed = time.perf_counter() - t0
    summary = (f"{counts['written']} written, {counts['skipped']} skipped (output exists), "
               f"{counts['failed']} failed in {_format_seconds(elapsed)}")
    if audio_seconds > 0:
        summary += f"; {_format_seconds(audio_seconds)} of audio ({_format_speed(audio_seconds / max(elapsed, 1e-9))})"
    click.echo(summary, err=True)
    sys.exit(1 if counts["failed"] else 0)


def _say_hop_used(hop_size: float, frontend):
    """Patches start on whole STFT frames: say so when the hop asked for is not a whole number of them."""
    frames = frontend.hop_frames(hop_size)
    used = frames * frontend.hop_length / frontend.sample_rate
    if abs(used - hop_size) > 1e-6:
        click.echo(f"note: --hop-size {hop_size:g} s is {frames} STFT frames, {used:.4f} s (patches start on "
                   f"whole frames of {frontend.hop_length / frontend.sample_rate * 1000:.1f} ms)", err=True)


def _silence_native_stderr():
    """-q: C libraries (libmpg123's 'Note: Illegal Audio-MPEG-Header') print to file descriptor 2 directly;
    send it to /dev/null and keep Python's own messages (errors, the summary) on the real stderr."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):  # captured (a test runner): nothing native reaches it
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(saved, "w", buffering=1)


def _expand_or_exit(inputs):
    """Expanded inputs and the problems found, each reported; exit 2 if no audio input is left."""
    files, problems = expand_inputs(inputs)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if not files:
        click.echo("error: no audio input found", err=True)
        sys.exit(2)
    return files, problems


@main.command("tags", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Tags per file.")
@click.option("--all-tags", is_flag=True, help="Rank (or list) every tag of the model, not only those that "
                                                 "describe sounds (the others are names, places, game words).")
@click.option("--labels", default=None, metavar="'A,B,...'",
              help="Rank these comma-separated labels instead of tags (zero-shot classification), e.g. "
                   "'dog bark,siren,rain on a window'; each stands for the tags its words resolve to (and "
                   "scores as their mean).")
@click.option("--list-tags", "list_tags_flag", is_flag=True, help="Print the sound tags by broad category (with --all-tags, "
                                                  "every tag) and exit.")
@click.option("--frames", is_flag=True, help="Tag each patch (~2.23 s) of each file too, with its time range: "
                                              "where in a long recording the sounds are.")
@click.option("--json", "fmt", flag_value="json", help="A JSON array, one {path, tags: [[tag, score], ...]} per "
                                                        "file (with --frames, also frames: [{start, end, tags}]).")
@click.option("--csv", "fmt", flag_value="csv", help="CSV with a header: path, start, end, rank, tag, score; one "
                                                      "row per tag (start and end empty for a whole file).")
@common_options
def tags_command(inputs, top_k, all_tags, labels, list_tags_flag, frames, fmt, model_source, device, **option_kw):
    """Print zero-shot tags of audio files (files, folders or glob patterns).

    Tags are the model's tags that describe sounds, ranked by its tag head where it has one (a log-odds
    ratio: > 0 where the tag is likelier than a priori), else by the cosine similarity of the aligned audio
    and tag vectors (always so with --all-tags). One line per file: `path<TAB>tag (score), ...` (with
    --frames, then one line per patch: `path<TAB>start-end<TAB>tag (score), ...`), or --json, or --csv.
    With --labels, the given labels are ranked instead; the tags each label stands for are printed first
    (to stderr). `--list-tags` prints the tags instead.
    """
    from .core import embed_files
    from .tag_output import TagWriter, file_tags, list_tags

    if list_tags_flag:
        click.echo(list_tags(load_for(model_source, device, option_kw).vocabulary, all_tags))
        return
    if not inputs:
        raise click.UsageError("give audio FILES to tag, or --list-tags")
    files, problems = _expand_or_exit(inputs)
    model = load_for(model_source, device, option_kw)
    if not model.net.has_tag_space:
        raise click.ClickException(f"this {model.net.cfg.variant} checkpoint has no tag space to predict tags with")
    if labels is not None:
        labels = [label.strip() for label in labels.split(",") if label.strip()]
        try:
            for label in labels:
                click.echo(f"{label}: {', '.join(model.vocabulary.resolve(label))}", err=True)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--labels")
    failed = len(problems)
    out = TagWriter(fmt)
    for path, emb, stamps, error in embed_files([p for p, _ in files], model=model, options=EmbedOptions(**option_kw)):
        if error is not None:
            click.echo(f"failed: {error}", err=True)
            failed += 1
            continue
        out.write(path, *file_tags(model, path, emb, stamps, frames, top_k, all_tags=all_tags, labels=labels))
    out.close()
    sys.exit(1 if failed else 0)


from .search_cli import map_command, search_command  # noqa: E402  (coala-embed search, coala-embed map)

main.add_command(search_command)
main.add_command(map_command)

if __name__ == "__main__":  # python -m coala_embed.cli
    main()
