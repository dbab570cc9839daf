"""Measure coala-embed search and map (issue 34): quality on esc50-dev, speed at 10k-1M vectors, map build time.

    python examples/benchmark_search.py --data ../shared/data/esc50-dev [--sizes 10000,100000,1000000]
                                        [--compare-libraries] [--skip-map]

1. Query by example, leave one out, on esc50-dev (labels.csv: file,label,group): precision@10 of the
   bundled model's clip embeddings (searched through coala_embed.search.Index on a Parquet table) against
   MFCCs in the same run (the project's 120-d anchor: librosa at 22050 Hz, 20 MFCCs + deltas + delta-deltas,
   mean and std over time; cosine on raw and on z-scored features). Also with the other clips of the same
   source recording (`group`) left out as well, since esc50 cuts several clips from one recording.
2. Query by words: every esc50 class whose name the model's vocabulary resolves (coala_embed.resolve_tags), as
   searched (the tag head where the name stands for sound tags) and in the aligned space (cosine) beside it.
3. Synthetic collections (below) of 10k, 100k, 1M vectors: exact search (memory-mapped, float32 up to 1 GiB,
   else float16, as Index does) and the faiss IVF index: build time, latency per single query, recall@10.
   Words through the tag head at the same sizes: scoring every vector once, and a query's scan.
4. --compare-libraries: hnswlib, usearch and faiss-cpu at 100k vectors (why faiss was chosen).
5. Map: projections (PCA, t-SNE, UMAP) on esc50 (how well 2-D neighbours share a label; trustworthiness)
   and the whole `build_map` on a 10k-row table.

Synthetic vectors: 1000 cluster centres in a 64-d latent space (standard normal), each point a centre plus
standard normal latent noise (clusters overlap as much as they are apart), mapped to 1152-d by a fixed random
matrix, plus isotropic noise of standard deviation 0.5 per dimension; queries are fresh points of the same law.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import coala_embed  # noqa: E402
from coala_embed.ann import ApproximateIndex  # noqa: E402
from coala_embed.search import HEAD_ROWS, Index, Query, best_of, exact_top  # noqa: E402

DIM = 1152


def p_at_k(sim: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10, drop_group: bool = False):
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    if drop_group:
        sim[groups[:, None] == groups[None, :]] = -np.inf
    top = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean(labels[top] == labels[:, None]))


def cosine(x):
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def mfcc_anchor(path):
    import librosa
    y, sr = librosa.load(path, sr=22050, mono=True)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    f = np.vstack([m, librosa.feature.delta(m, order=1), librosa.feature.delta(m, order=2)])
    return np.concatenate([f.mean(axis=1), f.std(axis=1)]).astype(np.float32)


def esc50(data: Path, work: Path, model):
    rows = list(csv.DictReader(open(data / "labels.csv")))
    paths = [str(data / r["file"]) for r in rows]
    labels, groups = np.array([r["label"] for r in rows]), np.array([r["group"] for r in rows])
    t = time.perf_counter()
    coala_embed.process_file(paths, output_dir=work / "esc50", output_format="parquet", model=model)
    t_embed = time.perf_counter() - t
    index = Index(work / "esc50", model=model, method="exact")
    order = [index.rows.files.index(p) for p in paths]  # rows follow the table; put them in labels.csv order
    vec = np.asarray(index.rows.vectors, np.float32)[order]
    t = time.perf_counter()
    mf = np.stack([mfcc_anchor(p) for p in paths])
    t_mfcc = time.perf_counter() - t
    z = (mf - mf.mean(0)) / (mf.std(0) + 1e-8)
    print(f"\n## esc50-dev: {len(paths)} clips, {len(set(labels))} classes (embedding {t_embed:.1f} s, MFCC {t_mfcc:.1f} s)")
    print("query by example, leave one out | precision@10 | same recording's clips also left out")
    aligned = np.asarray(index.vectors("aligned"), np.float32)[order]
    for name, sim in (("coala-embed (clip embedding, cosine)", cosine(vec)),
                      ("coala-embed (aligned space, cosine)", cosine(aligned)),
                      ("MFCC 120-d (cosine)", cosine(mf)), ("MFCC 120-d z-scored (cosine)", cosine(z))):
        print(f"{name} | {p_at_k(sim, labels, groups):.3f} | {p_at_k(sim, labels, groups, drop_group=True):.3f}")
    print("(7 other clips per class: precision@10 cannot exceed 0.700)")
    # the same through the search path: each file as a query against the index (self excluded)
    scores, ids = index.top("audio", vec, 11)
    got = [[index.rows.files[index.rows.owner[j]] for j in row if index.rows.files[index.rows.owner[j]] != paths[i]][:10]
           for i, row in enumerate(ids)]
    lab = dict(zip(paths, labels))
    print(f"check: Index.top gives precision@10 {np.mean([[lab[g] == labels[i] for g in row] for i, row in enumerate(got)]):.3f}")

    print("\nquery by words (classes whose names resolve to tags) | tags | precision@10 | R-precision (top 8), "
          "as searched (tag head) | the same in the aligned space (cosine, before 0.11)")
    res = {"search": ([], []), "aligned": ([], [])}
    for cls in sorted(set(labels)):
        try:
            tags = model.vocabulary.resolve(cls.replace("_", " "))
        except ValueError:
            continue
        space, query = index.query_vector(Query(text=cls))
        rel = [lab[h.path] == cls for h in index.search(text=cls, top_k=10)[0]]  # ranked: the top 8 lead
        cos_ids = index.top("aligned", index.text_vector(cls)[None] / np.linalg.norm(index.text_vector(cls)), 10)[1][0]
        rel_cos = [lab[index.rows.files[index.rows.owner[j]]] == cls for j in cos_ids]
        line = [cls, " ".join(tags) + ("" if space == "head" else " (no sound tag: aligned)")]
        for key, r in (("search", rel), ("aligned", rel_cos)):
            res[key][0].append(np.mean(r)), res[key][1].append(np.mean(r[:8]))
            line.append(f"{res[key][0][-1]:.2f} | {res[key][1][-1]:.2f}")
        print(" | ".join(line))
    print(f"mean over {len(res['search'][0])} classes | | " + " | ".join(
        f"{np.mean(a):.3f} | {np.mean(b):.3f}" for a, b in res.values()) + f" (chance {8 / len(paths):.3f})")
    return vec, labels


def synthetic(n, seed, out=None, dtype=np.float32, latent=64, k=1000):
    rng = np.random.default_rng(1234)  # the law (centres, projection) is fixed; the draws depend on seed
    A = (rng.standard_normal((latent, DIM)) / np.sqrt(latent)).astype(np.float32)
    C = rng.standard_normal((k, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype) if out is None else out
    for s in range(0, n, 50000):
        m = min(50000, n - s)
        zlat = C[rng.integers(0, k, m)] + rng.standard_normal((m, latent)).astype(np.float32)
        x = zlat @ A + 0.5 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall(ids, truth):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, truth)]))


def scale(sizes, work: Path, n_queries=100):
    print("\n## synthetic collections (1152-d), single queries on 2 cores")
    print("vectors | cache dtype | exact: ms/query (mean, p95) | approximate: build s | ms/query (mean, p95) "
          "| recall@10 | index MB")
    queries = synthetic(n_queries, seed=999)
    for n in sizes:
        dtype = np.float32 if n * DIM * 4 <= (1 << 30) else np.float16
        path = work / f"synthetic-{n}.bin"
        t = time.perf_counter()
        vec = np.memmap(path, dtype=dtype, mode="w+", shape=(n, DIM))
        synthetic(n, seed=n, out=vec)
        vec.flush()
        vec = np.memmap(path, dtype=dtype, mode="r", shape=(n, DIM))
        t_make = time.perf_counter() - t
        truth = exact_top(vec, queries, 10)[1]  # batched: the reference
        ex = []
        for q in queries[:20 if n >= 1_000_000 else n_queries]:
            t = time.perf_counter()
            exact_top(vec, q[None], 10)
            ex.append(time.perf_counter() - t)
        t = time.perf_counter()
        ann = ApproximateIndex.build(vec)
        t_build = time.perf_counter() - t
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter()
            ids.append(ann.search(q[None], 10)[1][0])
            lat.append(time.perf_counter() - t)
        import faiss
        faiss.write_index(ann.index, str(work / "ann.faiss"))
        mb = os.path.getsize(work / "ann.faiss") / 1e6
        print(f"{n:,} | {np.dtype(dtype).name} | {1e3 * np.mean(ex):.1f}, {1e3 * np.percentile(ex, 95):.1f} | "
              f"{t_build:.1f} | {1e3 * np.mean(lat):.2f}, {1e3 * np.percentile(lat, 95):.2f} | "
              f"{recall(ids, truth):.3f} | {mb:.0f}  (nlist {ann.index.nlist}, nprobe {ann.index.nprobe}; "
              f"data made in {t_make:.0f} s)", flush=True)
        del vec, ann
        path.unlink()


def head_scale(sizes, work: Path, model, n_queries=20):
    """Words through the tag head at scale: the one-off cost of scoring every vector (Index caches it as
    (tags, N), float16 above 1 GiB of vectors as the vectors themselves) and a query's scan of one or two rows."""
    head = model.tag_head
    print(f"\n## words through the tag head ({len(head.tags)} tags, hidden {head.w1.shape[1]}), random "
          f"{model.embedding_size}-d embeddings")
    print("vectors | cache dtype, MB | scoring every vector: s (vectors/s) | one tag: ms/query (mean, p95) | "
          "two tags: ms/query (mean, p95)")
    rng = np.random.default_rng(0)
    for n in sizes:
        dtype = np.float32 if n * model.embedding_size * 4 <= (1 << 30) else np.float16
        path = work / f"head-{n}.bin"
        out = np.memmap(path, dtype=dtype, mode="w+", shape=(len(head.tags), n))
        x = rng.standard_normal((HEAD_ROWS, model.embedding_size)).astype(np.float32)  # values do not change the cost
        t = time.perf_counter()
        for s in range(0, n, HEAD_ROWS):
            e = min(n, s + HEAD_ROWS)
            out[:, s:e] = head.scores(x[:e - s]).T
        out.flush()
        t_score = time.perf_counter() - t
        lat = {1: [], 2: []}
        for i in range(n_queries):
            for m in lat:
                cols = rng.choice(len(head.tags), m, replace=False)
                t = time.perf_counter()
                best_of(np.mean([np.asarray(out[c], np.float32) for c in cols], axis=0), 10)
                lat[m].append(time.perf_counter() - t)
        print(f"{n:,} | {np.dtype(dtype).name}, {path.stat().st_size / 1e6:.0f} | {t_score:.1f} ({n / t_score:,.0f}) | "
              + " | ".join(f"{1e3 * np.mean(v):.1f}, {1e3 * np.percentile(v, 95):.1f}" for v in lat.values()), flush=True)
        del out
        path.unlink()


def compare_libraries(work: Path, n=100_000, n_queries=200):
    print(f"\n## ANN libraries at {n:,} synthetic vectors (build on 2 threads, single queries)")
    print("library, settings | build s | ms/query | recall@10")
    x = synthetic(n, seed=7)
    queries = synthetic(n_queries, seed=999)
    truth = exact_top(x, queries, 10)[1]

    def run(name, build, query):
        t = time.perf_counter()
        ix = build()
        tb = time.perf_counter() - t
        for label, q in query(ix):
            t = time.perf_counter()
            ids = [q(v) for v in queries]
            print(f"{name}, {label} | {tb:.1f} | {1e3 * (time.perf_counter() - t) / n_queries:.2f} | "
                  f"{recall(ids, truth):.3f}", flush=True)

    try:
        import hnswlib

        def hb():
            p = hnswlib.Index(space="ip", dim=DIM)
            p.init_index(max_elements=n, ef_construction=100, M=16)
            p.set_num_threads(2)
            p.add_items(x)
            p.set_num_threads(1)
            return p

        def hq(p):
            for ef in (32, 64, 128):
                p.set_ef(ef)
                yield f"HNSW M=16 ef_construction=100 ef={ef}", lambda v: p.knn_query(v[None], k=10)[0][0]
        run(f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else ''}", hb, hq)
    except ImportError:
        print("hnswlib not installed")
    try:
        import usearch
        from usearch.index import Index as UIndex
        for dt in ("f16", "i8"):
            def ub(dt=dt):
                ix = UIndex(ndim=DIM, metric="cos", dtype=dt, connectivity=16, expansion_add=100)
                ix.add(np.arange(n), x, threads=2)
                return ix

            def uq(ix, dt=dt):
                for ef in (32, 64, 128):
                    ix.expansion_search = ef
                    yield f"HNSW {dt} M=16 ef={ef}", lambda v: ix.search(v, 10).keys
            run(f"usearch {usearch.__version__}", ub, uq)
    except ImportError:
        print("usearch not installed")
    import faiss

    def fq(a):
        for nprobe in (8, 16, 32, 64):
            yield f"IVF{a.index.nlist},SQ8 + exact re-scoring, nprobe={nprobe}", \
                lambda v, p=nprobe: a.search(v[None], 10, nprobe=p)[1][0]
    run(f"faiss-cpu {faiss.__version__}", lambda: ApproximateIndex.build(x), fq)


def maps(work: Path, vec, labels, model):
    from sklearn.manifold import trustworthiness

    from coala_embed.mapview import build_map, project
    print("\n## map projections on esc50-dev clip embeddings (160 points)")
    print("projection | s | 2-D neighbours sharing the label (10 nearest) | trustworthiness (10)")
    for method in ("pca", "tsne", "umap"):
        t = time.perf_counter()
        xy, _ = project(vec, method)
        dt = time.perf_counter() - t
        d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        nn = np.argsort(d, axis=1)[:, :10]
        print(f"{method} | {dt:.1f} | {np.mean(labels[nn] == labels[:, None]):.3f} | "
              f"{trustworthiness(vec, xy, n_neighbors=10, metric='cosine'):.3f}", flush=True)
    import pyarrow as pa
    import pyarrow.parquet as pq
    import json
    n = 10_000
    x = synthetic(n, seed=5)
    table = pa.table({"path": [f"sounds/{i // 500:02d}/s{i:05d}.wav" for i in range(n)], "status": ["written"] * n,
                      "error": pa.nulls(n, pa.string()), "duration": np.full(n, 5.0),
                      "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM)})
    table = table.replace_schema_metadata({"coala_embed": json.dumps({"weights_sha256": model.sha256})})
    (work / "map10k").mkdir(exist_ok=True)
    pq.write_table(table, work / "map10k" / "embeddings.parquet")
    print(f"\n## map of {n:,} files (synthetic vectors): build_map, whole (read, cache, top tags, projection, page)")
    for method in ("pca", "tsne", "umap"):
        t = time.perf_counter()
        xy, _ = project(x, method)
        tp = time.perf_counter() - t
        info = build_map(work / "map10k", work / f"map-{method}.html", model=model, projection=method)
        print(f"{method} | projection alone {tp:.1f} s | build_map {info['seconds']:.1f} s | page "
              f"{os.path.getsize(work / f'map-{method}.html') / 1e6:.1f} MB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "esc50-dev"))
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--compare-libraries", action="store_true")
    ap.add_argument("--skip-map", action="store_true")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    import platform
    import torch
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"# {cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}, "
          f"python {platform.python_version()}, coala-embed {coala_embed.__version__}")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        model = coala_embed.load_model()
        vec, labels = esc50(Path(args.data), work, model)
        if not args.skip_map:
            maps(work, vec, labels, model)
        if args.compare_libraries:
            compare_libraries(work)
        scale([int(s) for s in args.sizes.split(",") if s], work)
        if model.tag_head is not None:
            head_scale([int(s) for s in args.sizes.split(",") if s], work, model)
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
