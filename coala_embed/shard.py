"""Shards: the K-th of N deterministic, disjoint parts of a list of inputs.

N processes given the same inputs, one per shard (a Slurm job array, a Kubernetes indexed job,
`torchrun --nproc_per_node G --no-python coala-embed ...`), cover the list exactly once. Shard K holds
the inputs at positions K, K+N, K+2N, ... of the list sorted by path: every process sorts the same way
whatever order the inputs came in, and long and short files in one folder spread over all shards.
The split depends on the whole list, so all shards must be given the same inputs and the same N.
"""
from __future__ import annotations

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


def shard_indices(paths, shard) -> list[int]:
    """Positions in `paths` of the inputs that belong to `shard` (K, N), in input order."""
    k, n = check_shard(shard)
    order = sorted(range(len(paths)), key=lambda i: os.fspath(paths[i]))
    return sorted(order[k::n])


def shard_name(shard) -> str:
    """'-00002-of-00008' for shard (2, 8): zero-padded so that the files sort in shard order."""
    k, n = check_shard(shard)
    return f"-{k:05d}-of-{n:05d}"
