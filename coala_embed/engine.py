"""The embedding engine: loaded models, the inference encoder at a precision, and shared batches.

Patches of many clips are batched together through the encoder; a clip's result does not depend
on which other clips share its batches (within float rounding, < 1e-5). Jobs are (key, make_patches)
pairs built by `file_job` and `array_job`; `embed_jobs` yields each clip's patch embeddings in input
order, and `clip_mean` turns them into the clip embedding.
"""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from . import pipeline
from .audio import AudioError
from .decode import check_sample_rate, clip_blocks, file_clip_blocks, mono_blocks_from_array
from .options import EmbedOptions
from .patches import iter_patches

if TYPE_CHECKING:  # the engine itself imports no torch: the encoder and the checkpoint bring it
    from .checkpoint import Model

_loaded: dict = {}


def get_model(model=None, device=None, backend: str | None = None) -> Model:
    """A loaded Model as given, or load (once per source, device and backend) a checkpoint source.

    backend: what will run the encoder, 'torch' or 'onnx' (EmbedOptions.backend); None: the given model
    as it is, or a source loaded for torch. A source is loaded for 'onnx' without torch; a torch model
    also runs with 'onnx' (its encoder exported in memory); a model loaded for 'onnx' has no torch network.
    """
    from .checkpoint import Model, load_model

    if isinstance(model, Model):
        check_backend(model, backend)
        if device is not None and model.backend == "onnx":
            if str(device) != "cpu":
                raise ValueError(f"backend='onnx' runs on the CPU (onnxruntime), got device={str(device)!r}")
        elif device is not None and backend != "onnx":
            import torch

            if torch.device(device) != model.device:
                model.net.to(device)
                model.device = torch.device(device)
        return model
    backend = backend or "torch"
    key = (None if model is None else os.fspath(model), None if device is None else str(device), backend)
    if key not in _loaded:
        _loaded[key] = load_model(model, device, backend=backend)
    return _loaded[key]


def check_backend(model: Model, backend: str | None):
    if backend == "torch" and model.backend == "onnx":
        raise ValueError("this model was loaded with backend='onnx' and has no torch network: embed with "
                         "backend='onnx' (--backend onnx), or load it with load_model(..., backend='torch')")


# ----------------------------------------------------------------------------------------------
# shared batches


@dataclasses.dataclass
class _Job:
    key: object
    outputs: list = dataclasses.field(default_factory=list)
    times: list = dataclasses.field(default_factory=list)
    pending: int = 0
    finished: bool = False
    error: str | None = None


def embed_jobs(model: Model, jobs: Iterable[tuple[object, Callable[[], Iterator]]], options: EmbedOptions,
               ) -> Iterator[tuple[object, np.ndarray | None, np.ndarray | None, str | None]]:
    """Embed the patches of many clips in shared batches.

    jobs: (key, make_patches) pairs; make_patches() returns an iterator of (patches, centre_times). The key
    names the clip in messages (a path, 'clip 3'): results come in input order, keys need not be unique.
    Yields (key, embeddings (T, D), times (T,), None) or (key, None, None, error message), in input order.
    A clip that fails part-way is reported and does not disturb the others. The front end of the next
    clips runs in `num_workers` threads (coala_embed.pipeline) while the encoder runs; batches are
    composed in input order either way, so the results do not depend on num_workers.
    """
    batch_size, num_workers = options.batch_size, options.num_workers
    if num_workers is None:
        num_workers = pipeline.default_workers(model.device.type, options.precision)
    queue: collections.deque[_Job] = collections.deque()
    batch: list[np.ndarray] = []
    owners: list[tuple[_Job, int]] = []
    n_batch = 0
    in_flight = None  # the last batch launched: (its result function, owners), collected after the next launch
    encoder = make_encoder(model, options)

    def collect():
        nonlocal in_flight
        if in_flight is None:
            return
        result, batch_owners = in_flight
        in_flight = None
        out = result()
        offset = 0
        for job, k in batch_owners:
            job.outputs.append(out[offset:offset + k])
            job.pending -= k
            offset += k

    def run_batch():
        # launch this batch, then collect the previous one: on CUDA the host assembles the next batch
        # while the device computes
        nonlocal n_batch, in_flight
        result = encoder.submit(batch)
        collect()
        in_flight = (result, list(owners))
        batch.clear()
        owners.clear()
        n_batch = 0

    def finished_jobs():
        while queue and queue[0].finished and queue[0].pending == 0:
            job = queue.popleft()
            if job.error is not None:
                yield job.key, None, None, job.error
            else:
                yield job.key, np.concatenate(job.outputs), np.concatenate(job.times), None

    for key, chunks in pipeline.prefetch(jobs, num_workers, max_patches=2 * batch_size):
        job = _Job(key)
        queue.append(job)
        try:
            for patches, times in chunks:
                job.times.append(times)
                i = 0
                while i < len(patches):
                    take = min(batch_size - n_batch, len(patches) - i)
                    batch.append(patches[i:i + take])
                    owners.append((job, take))
                    job.pending += take
                    n_batch += take
                    i += take
                    if n_batch == batch_size:
                        run_batch()
        except AudioError as e:
            job.error = str(e)
        except Exception as e:  # a batch job must survive any one bad input
            job.error = f"{key}: {type(e).__name__}: {e}"
        job.finished = True
        yield from finished_jobs()
    if n_batch:
        run_batch()
    collect()
    yield from finished_jobs()


def make_encoder(model: Model, options: EmbedOptions):
    """The encoder that embed_jobs feeds: `submit(list of patch arrays)` -> a function giving the embeddings."""
    check_backend(model, options.backend)
    if options.backend == "onnx":
        from .onnx_encoder import OnnxEncoder

        return OnnxEncoder(model, precision=options.precision)
    from .encoder import TorchEncoder

    return TorchEncoder(model, options.precision)


def clip_mean(embeddings: np.ndarray) -> np.ndarray:
    """The clip embedding: the mean of its patch embeddings (T, D) -> (D,) float32, summed in float64."""
    return embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)


def array_job(y, sr, name: str, model: Model, options: EmbedOptions) -> Callable[[], Iterator]:
    """make_patches for an in-memory clip (computed when called, in a front-end worker)."""
    hop_frames = model.frontend.hop_frames(options.hop_size)

    def make_patches():
        rate = check_sample_rate(sr, name)
        blocks = clip_blocks(lambda: mono_blocks_from_array(y, rate, name), rate, model.frontend, options.resampler,
                             options.clip_seconds)
        return iter_patches(blocks, model.frontend, hop_frames, options.center, options.clip_seconds)
    return make_patches


def file_job(path, model: Model, options: EmbedOptions) -> Callable[[], Iterator]:
    """make_patches for an audio file (decoded when called, in a front-end worker)."""
    hop_frames = model.frontend.hop_frames(options.hop_size)

    def make_patches():
        blocks = file_clip_blocks(path, model.frontend, options.resampler, options.clip_seconds)
        return iter_patches(blocks, model.frontend, hop_frames, options.center, options.clip_seconds)
    return make_patches
