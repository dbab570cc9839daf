"""A prepared folder packed small enough to travel to a lent GPU machine, and unpacked there.

    python -m training.pack pack /work/data/prepared .gpu/data --part-mib 40
    python -m training.pack unpack /tmp/parts /tmp/prepared

The working tree that travels to the device machine is capped at 64 MiB a call, and a prepared folder
(training/corpus/prepare.py) is ~2 GB of float32. Patches are 8-bit on the way: each split's values are mapped
linearly from their own [min, max] (training patches span exactly [0, 1]) to 0..255 and back, an error
of at most half a step (0.002 of the training range), far below the 0.05 by which augment.py's mixing
already approximates a mixture. Multi-hot tags travel as bits. The bytes are cut into blocks of 16 MiB,
each compressed with xz on its own (in parallel both ways), and the blocks are grouped into folders
`part-000`, `part-001`, ... of at most --part-mib each, one folder per device call if need be. A
carried folder does not stay in the working tree there until the next call (measured on the H200), so
each call copies its part to a folder outside it (e.g. /tmp/parts) and `unpack` reads that folder.

The unpacked folder is a prepared folder like any other, its meta.json marked "packed_uint8": true.
"""
from __future__ import annotations

import argparse
import json
import lzma
import shutil
from multiprocessing import Pool
from pathlib import Path

import numpy as np

BLOCK_BYTES = 16 << 20
# a device call carries at most 64 MiB including the repository's tracked files (20 MiB, most of it the
# bundled weights): a part of 45 MiB with them was refused on 2026-12-04
PART_MIB = 40
LEVELS = 255


def _compress(block: bytes) -> bytes:
    return lzma.compress(block, preset=6)


def _quantise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(x.min()), float(x.max())
    span = (hi - lo) or 1.0
    q = np.empty(x.shape, np.uint8)
    for i in range(0, len(x), 4096):  # in slices: a float copy of the whole split would double the memory
        q[i:i + 4096] = np.rint((np.asarray(x[i:i + 4096], np.float32) - lo) * (LEVELS / span))
    return q, lo, hi


def pack(prepared, out, part_mib: float = PART_MIB, workers: int = 2) -> dict:
    prepared, out = Path(prepared), Path(out)
    if out.exists():
        shutil.rmtree(out)
    arrays, header = [], {"meta": json.loads((prepared / "meta.json").read_text()), "arrays": []}
    for split in ("train", "val"):
        q, lo, hi = _quantise(np.load(prepared / f"{split}_patches.npy", mmap_mode="r"))
        tags = np.load(prepared / f"{split}_tags.npy")
        bits = np.packbits(tags.astype(bool), axis=1)
        arrays += [q, bits]
        header["arrays"] += [{"name": f"{split}_patches", "shape": list(q.shape), "lo": lo, "hi": hi},
                             {"name": f"{split}_tags", "shape": list(tags.shape), "packed_shape": list(bits.shape)}]
    stream = b"".join(a.tobytes() for a in arrays)
    blocks = [stream[i:i + BLOCK_BYTES] for i in range(0, len(stream), BLOCK_BYTES)]
    with Pool(workers) as pool:
        compressed = pool.map(_compress, blocks)
    header["blocks"], part, part_bytes = [], 0, 0
    for i, data in enumerate(compressed):
        if part_bytes and part_bytes + len(data) > part_mib * 2**20:
            part, part_bytes = part + 1, 0
        name = f"part-{part:03d}/block-{i:05d}.xz"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
        header["blocks"].append(name)
        part_bytes += len(data)
    header["parts"] = part + 1
    header["raw_bytes"], header["packed_bytes"] = len(stream), sum(len(c) for c in compressed)
    (out / "part-000" / "header.json").write_text(json.dumps(header))
    return {k: header[k] for k in ("parts", "raw_bytes", "packed_bytes")}


def _decompress(path: str) -> bytes:
    return lzma.decompress(Path(path).read_bytes())


def unpack(packed, out, workers: int = 8) -> dict:
    packed, out = Path(packed), Path(out)
    header = json.loads((packed / "part-000" / "header.json").read_text())
    missing = [b for b in header["blocks"] if not (packed / b).exists()]
    if missing:
        raise FileNotFoundError(f"{packed}: {len(missing)} of {len(header['blocks'])} blocks missing, "
                                f"e.g. {missing[0]} (all {header['parts']} part folders are needed)")
    with Pool(workers) as pool:
        stream = b"".join(pool.map(_decompress, [str(packed / b) for b in header["blocks"]]))
    out.mkdir(parents=True, exist_ok=True)
    offset = 0
    for spec in header["arrays"]:
        stored = spec.get("packed_shape", spec["shape"])
        n = int(np.prod(stored))
        raw = np.frombuffer(stream, np.uint8, n, offset).reshape(stored)
        offset += n
        if "lo" in spec:
            x = np.lib.format.open_memmap(out / f"{spec['name']}.npy", "w+", np.float32, tuple(spec["shape"]))
            step = ((spec["hi"] - spec["lo"]) or 1.0) / LEVELS
            for i in range(0, len(raw), 4096):
                x[i:i + 4096] = raw[i:i + 4096] * np.float32(step) + np.float32(spec["lo"])
            x.flush()
        else:
            np.save(out / f"{spec['name']}.npy", np.unpackbits(raw, axis=1, count=spec["shape"][1]))
    if offset != len(stream):
        raise ValueError(f"{packed}: {len(stream) - offset} bytes left over after the arrays the header lists")
    (out / "meta.json").write_text(json.dumps({**header["meta"], "packed_uint8": True}, indent=1) + "\n")
    return {"arrays": [s["name"] for s in header["arrays"]], "bytes": len(stream)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack", help="prepared folder -> part folders")
    a.add_argument("prepared")
    a.add_argument("out")
    a.add_argument("--part-mib", type=float, default=PART_MIB)
    a.add_argument("--workers", type=int, default=2)
    b = sub.add_parser("unpack", help="part folders -> prepared folder")
    b.add_argument("packed")
    b.add_argument("out")
    b.add_argument("--workers", type=int, default=8)
    args = p.parse_args(argv)
    if args.command == "pack":
        print(json.dumps(pack(args.prepared, args.out, args.part_mib, args.workers)))
    else:
        print(json.dumps(unpack(args.packed, args.out, args.workers)))


if __name__ == "__main__":
    main()
