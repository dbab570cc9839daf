"""Shards: the K-th of N deterministic, disjoint parts of a set of inputs.

N processes, one per shard (a Slurm job array, a Kubernetes indexed job, `torchrun --nproc_per_node G
--no-python coala-embed ...`), cover the inputs exactly once. An input belongs to shard
`blake2b(key) mod N`, where key is its identity (coala_embed.sinks.identify: the path relative to the
folder it was found under): it depends on that input alone, not on the list, so adding or removing
files never moves another file to another shard, the processes need not see the same list, and a
shard run again resumes. Shards are balanced in expectation (each within a few percent of 1/N for
thousands of files), not exactly.
"""
from __future__ import annotations

import hashlib
import os


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), K counted from 0: '0/4' ... '3/4'."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard {text!r} is not K/N (e.g. 0/4 for the first of four shards)") from None
    return check_shard((k, n))


def check_shard(shard) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in shard)
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (K, N), got {shard!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: need N >= 1 and 0 <= K < N (shards are counted from 0)")
    return k, n


def shard_from_env(environ=os.environ) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) as torchrun sets them, or None outside a multi-process launch.

    The global RANK, not LOCAL_RANK, numbers the shard, so that several nodes of `torchrun --nnodes M`
    do not repeat each other's shards (on one node the two are the same); LOCAL_RANK picks the GPU.
    """
    world = environ.get("WORLD_SIZE")
    rank = environ.get("RANK", environ.get("LOCAL_RANK"))
    if world is None or rank is None or int(world) <= 1:
        return None
    return check_shard((int(rank), int(world)))


def device_from_env(environ=os.environ) -> str | None:
    """cuda:LOCAL_RANK under torchrun when CUDA is available (one GPU per process), else None."""
    local_rank = environ.get("LOCAL_RANK")
    if local_rank is None or shard_from_env(environ) is None:
        return None
    import torch

    return f"cuda:{int(local_rank)}" if torch.cuda.is_available() else None


def shard_of(key: str, n: int) -> int:
    """The shard (0 <= K < n) of an input key: a stable hash, the same on every machine and Python."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def shard_indices(keys, shard) -> list[int]:
    """Positions in `keys` (input keys, or paths) of the inputs that belong to `shard` (K, N), in input order."""
    k, n = check_shard(shard)
    return [i for i, key in enumerate(keys) if shard_of(os.fspath(key), n) == k]


def shard_name(shard) -> str:
    """'-00002-of-00008' for shard (2, 8): zero-padded so that the files sort in shard order."""
    k, n = check_shard(shard)
    return f"-{k:05d}-of-{n:05d}"
