"""Ray Data: embed a dataset of audio paths on a Ray cluster, one model per worker.

    import ray, coala_embed.ray
    ds = coala_embed.ray.embed_dataset(paths, num_workers=8, num_gpus_per_worker=1)
    ds.write_parquet("s3://bucket/embeddings")   # or local/shared storage

Rows have the columns of `--format parquet` (path, key, size, mtime_ns, status, error, duration,
embedding and, with frames=True, patch_embeddings and timestamps), so the files read back the same way. A bad file is a
row with status 'failed' and its error. Every path must be readable where the workers run (a shared
file system on a multi-node cluster). Needs `pip install "coala-embed[ray]"`.
"""
from __future__ import annotations

from .options import EmbedOptions


class _Embedder:
    """The callable class of `map_batches`: Ray builds one per worker, so the model loads once per worker."""

    def __init__(self, model, device, frames: bool, options: EmbedOptions):
        from .engine import get_model
        from .parquet import schema

        self.model = get_model(model, device, options.backend)
        self.frames, self.options = frames, options
        self.schema = schema(self.model.embedding_size, frames, {"weights_sha256": self.model.sha256, **options.identity()})

    def __call__(self, batch):
        from .core import embed_files
        from .decode import duration_of
        from .parquet import row, to_table
        from .sinks import identify

        rows = [row(identify(path), error, duration_of(path) if error is None else None, emb, ts, self.frames)
                for path, emb, ts, error in embed_files(batch["path"].to_pylist(), model=self.model, options=self.options)]
        return to_table(rows, self.schema)


def embed_dataset(data, model=None, batch_size: int = 32, num_workers: int | None = None,
                  num_gpus_per_worker: float = 0, frames: bool = False, options: EmbedOptions | None = None,
                  encoder_batch_size: int | None = None, **kw):
    """A lazy Ray Dataset of the embeddings of audio files (nothing runs until it is consumed or written).

    Args:
        data: a list of paths, or a ray.data.Dataset with a string column 'path'.
        model: a checkpoint source (folder, file or Hub id) that every worker can load; default: the
            bundled weights.
        batch_size: files handed to a worker at a time (one output block).
        num_workers: the size of the pool of workers (Ray actors); default: Ray scales it to the cluster.
        num_gpus_per_worker: GPUs reserved per worker (1: one worker per GPU); 0 runs on CPU.
        frames: as in `process_file`.
        options, **kw: the embedding options of `get_embedding` (hop_size, center, clip_seconds, resampler,
            precision; `num_workers` and `batch_size` mean Ray's here, so a worker's front-end threads and
            patches per forward pass are `options=EmbedOptions(num_workers=..., batch_size=...)`).
        encoder_batch_size: patches per forward pass inside a worker (`batch_size` of `get_embedding`).
        kw: the other keyword arguments go to `Dataset.map_batches` (e.g. num_cpus=4, memory=...).
    """
    import ray.data

    option_kw, map_batches_kw = EmbedOptions.split(kw)
    if encoder_batch_size is not None:
        option_kw["batch_size"] = encoder_batch_size
    options = EmbedOptions.of(options, "embed_dataset", **option_kw)
    if isinstance(data, ray.data.Dataset):
        if "path" not in data.columns():
            raise ValueError(f"the dataset needs a 'path' column, it has {data.columns()}")
        dataset = data.select_columns(["path"])
    else:
        dataset = ray.data.from_items([{"path": str(p)} for p in data])
    pool = ray.data.ActorPoolStrategy(size=num_workers) if num_workers else ray.data.ActorPoolStrategy(min_size=1)
    device = "cuda" if num_gpus_per_worker else "cpu"  # Ray shows each worker only its own GPUs
    model = None if model is None else str(model)
    return dataset.map_batches(_Embedder, batch_size=batch_size, batch_format="pyarrow", compute=pool,
                               num_gpus=num_gpus_per_worker or None,
                               fn_constructor_kwargs=dict(model=model, device=device, frames=frames, options=options),
                               **map_batches_kw)
