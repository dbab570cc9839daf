"""training.evaluate on tiny generated data sets: real outcomes, not just that it runs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from coala_embed import COALA, FrontEnd, ModelConfig, save_checkpoint  # noqa: E402
from coala_embed.core import process_file  # noqa: E402
from training.evaluation import cache as eval_cache  # noqa: E402
from training.evaluation import datasets as eval_datasets  # noqa: E402
from training.evaluation import extractors as eval_extractors  # noqa: E402
from training.evaluation import features  # noqa: E402
from training.evaluation import protocol as eval_protocol  # noqa: E402
from training.evaluation import run as eval_run  # noqa: E402

torch.set_num_threads(1)

SR = 16000
CLASSES = ("low", "high", "noise")


def clip(kind: str, rng: np.random.RandomState, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    amp = rng.uniform(0.1, 0.5)
    if kind == "noise":
        y = amp * rng.randn(len(t)) / 3
    else:
        f = (300.0 if kind == "low" else 2500.0) * rng.uniform(0.97, 1.03)
        y = amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + 0.005 * rng.randn(len(t))
    return np.clip(y, -1, 1).astype(np.float32)


def make_set(root, n_per_class: int = 10, layout: str = "csv", shuffle_labels: bool = False,
             groups: bool = True, seed: int = 0):
    """Tones at two pitches vs noise; groups of two consecutive clips of a class ('recordings')."""
    rng = np.random.RandomState(seed)
    root.mkdir(parents=True)
    rows = []
    for c in CLASSES:
        for i in range(n_per_class):
            name = f"{c}_{i:02d}.wav"
            folder = root / c if layout == "folders" else root
            folder.mkdir(exist_ok=True)
            sf.write(folder / name, clip(c, rng), SR)
            rows.append([name, c, f"{c}-rec{i // 2}"])
    if layout == "csv":
        labels = [r[1] for r in rows]
        if shuffle_labels:
            labels = list(np.random.RandomState(seed + 1).permutation(labels))
        with open(root / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "label", "group"] if groups else ["file", "label"])
            for r, lab in zip(rows, labels):
                w.writerow([r[0], lab, r[2]] if groups else [r[0], lab])
    return root


def run(ds_root, out, cache, extractors=None, seeds=(0, 1), correlation=False, tsne="none"):
    datasets, skipped = eval_datasets.find_datasets([ds_root])
    extractors = extractors or [eval_extractors.mfcc_extractor()]
    settings = eval_protocol.ClassifierSettings(max_iter=300, seeds=tuple(seeds))
    return eval_run.evaluate(datasets, extractors, out, settings, cache_root=cache, correlation=correlation, tsne=tsne,
                       skipped=skipped, progress=False)


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("sets") / "tones")


def test_mfcc_separates_deterministic_and_cached(separable, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = run(separable, tmp_path / "out1", cache, correlation=True, tsne="auto")
    task = first["tasks"]["tones"]
    assert task["n_clips"] == 30 and task["n_classes"] == 3 and task["group_column"] == "group"
    acc = task["accuracy"]["mfcc"]
    assert acc["mean"] > 0.9, acc  # chance is 1/3
    assert acc["n_fits"] == 10 and task["splitter"].startswith("StratifiedGroupKFold")
    assert first["timings"]["tones"]["mfcc"]["extracted"] == 30
    # correlation analysis: the MFCC anchor does correlate with MFCC statistics, above the chance level
    corr = task["correlation"]["mfcc"]["mfcc"]
    assert corr["cca"] > corr["cca_null"] + 0.2
    for name in ("results.json", "results.md", "accuracy.png", "tsne_tones.png"):
        assert (tmp_path / "out1" / name).stat().st_size > 0
    md = (tmp_path / "out1" / "results.md").read_text()
    assert "| MFCC (120-d) |" in md and " ± " in md
    json.loads((tmp_path / "out1" / "results.json").read_text())

    # second run: everything from the cache (extraction would fail), identical figures
    def boom(path):
        raise AssertionError("re-extracted a cached clip")
    monkeypatch.setattr(features, "clip_features", boom)
    monkeypatch.setattr(features, "mfcc_anchor", boom)
    monkeypatch.setattr(features, "clip_stats", boom)
    second = run(separable, tmp_path / "out2", cache, correlation=True)
    t = second["timings"]["tones"]
    assert t["mfcc"]["cache_hits"] == 30 and t["mfcc"]["extracted"] == 0 and t["mfcc"]["failed"] == 0
    assert t["descriptors"]["cache_hits"] == 30
    assert second["tasks"]["tones"]["accuracy"]["mfcc"] == acc

    # other classifier settings reuse the cache too; other seeds give other folds
    third = run(separable, tmp_path / "out3", cache, seeds=(5,))
    assert third["timings"]["tones"]["mfcc"]["cache_hits"] == 30
    assert list(third["tasks"]["tones"]["accuracy"]["mfcc"]["fold_accuracies"]) == ["5"]


def test_shuffled_labels_near_chance(tmp_path):
    root = make_set(tmp_path / "shuffled", n_per_class=20, shuffle_labels=True, groups=False)
    res = run(root, tmp_path / "out", None, seeds=(0, 1, 2))
    task = res["tasks"]["shuffled"]
    assert task["group_column"] is None and task["splitter"].startswith("StratifiedKFold")
    assert abs(task["chance"] - 1 / 3) < 1e-9
    assert task["accuracy"]["mfcc"]["mean"] < 0.55, task["accuracy"]["mfcc"]


def test_subfolder_layout(tmp_path):
    root = make_set(tmp_path / "folders", n_per_class=6, layout="folders")
    ds = eval_datasets.load_dataset(root)
    assert ds.layout == "sub-folders" and ds.groups is None
    assert ds.classes == sorted(CLASSES) and len(ds.files) == 18
    assert all(f.parent.name == lab for f, lab in zip(ds.files, ds.labels))
    res = run(root, tmp_path / "out", None, seeds=(0,))
    assert res["tasks"]["folders"]["accuracy"]["mfcc"]["mean"] > 0.8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_splits_never_straddle(seed):
    rng = np.random.RandomState(seed)
    labels = np.asarray([str(d) for d in range(10) for _ in range(30)], dtype=object)
    speakers = np.asarray([f"s{rng.randint(6)}" for _ in labels], dtype=object)
    pairs, desc = eval_protocol.make_splits(labels, speakers, 5, seed)
    assert desc.startswith("StratifiedGroupKFold(n_splits=5")
    seen = np.zeros(len(labels), int)
    for tr, te in pairs:
        assert not set(speakers[tr]) & set(speakers[te])
        seen[te] += 1
    assert (seen == 1).all()  # every clip is tested exactly once per seed
    # fewer groups than folds: as many folds as groups
    pairs, desc = eval_protocol.make_splits(labels, np.asarray([f"g{i % 3}" for i in range(len(labels))], dtype=object), 5, seed)
    assert len(pairs) == 3 and "n_splits=3" in desc


def test_absent_sets_skipped(tmp_path, capsys):
    out = tmp_path / "out"
    rc = eval_run.main(["--no-default-data", "--data", str(tmp_path / "nowhere"), "--no-random", "--out", str(out),
                  "--no-cache", "--no-progress"])
    assert rc == 0
    assert "skipping data set" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["tasks"] == {} and res["skipped_datasets"][0]["reason"] == "not found"
    # an absent set beside a present one: the present one is evaluated
    root = make_set(tmp_path / "present", n_per_class=4)
    datasets, skipped = eval_datasets.find_datasets([tmp_path / "nowhere", root], announce=lambda m: None)
    assert [d.name for d in datasets] == ["present"] and len(skipped) == 1


def test_labels_csv_third_column_and_missing_files(tmp_path):
    root = tmp_path / "spk"
    root.mkdir()
    rng = np.random.RandomState(0)
    with open(root / "labels.csv", "w") as f:
        f.write("file,label,speaker\n")
        for i in range(4):
            sf.write(root / f"{i}.wav", clip("low", rng), SR)
            f.write(f"{i}.wav,{i % 2},spk{i // 2}\n")
        f.write("gone.wav,0,spk9\n")
    ds = eval_datasets.load_dataset(root)
    assert ds.group_column == "speaker" and list(ds.groups) == ["spk0", "spk0", "spk1", "spk1"]
    assert len(ds.files) == 4 and "gone.wav" in ds.dropped[0]


def make_tiny_checkpoint(folder):
    torch.manual_seed(0)
    net = COALA(ModelConfig(n_tags=8)).eval()
    fe = FrontEnd()
    fe = fe.with_scaler(np.full(fe.n_mels, -16.0), np.full(fe.n_mels, 4.0))
    return save_checkpoint(folder, net, fe, [f"t{i}" for i in range(8)])


def test_model_and_random_extractors(separable, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "runs" / "tiny" / "export")
    extractors = eval_extractors.build_extractors([f"tiny={ckpt}"], mfcc=False, random=True, device="cpu")
    model_ex, random_ex = extractors
    assert (model_ex.name, random_ex.name) == ("tiny", "random")
    # random: same architecture and front end (scaler included), other weights
    assert random_ex.info["frontend_sha256"] == model_ex.info["frontend_sha256"]
    assert random_ex.info["weights_sha256"] != model_ex.info["weights_sha256"]
    assert model_ex.info["weights_sha256"][:16] in model_ex.identity
    assert eval_extractors.build_extractors([str(ckpt)], mfcc=False, random=False, device="cpu")[0].name == "tiny/export"

    cache = tmp_path / "cache"
    res = run(separable, tmp_path / "out", cache, extractors=extractors, seeds=(0,))
    for name in ("tiny", "random"):
        assert res["tasks"]["tones"]["accuracy"][name]["mean"] > 0.5  # well above chance even untrained
        assert res["extractors"][name]["embedding_size"] == 1920

    # the cached clip vector is exactly process_file's `mean`
    wav = sorted(separable.glob("*.wav"))[0]
    cached = eval_cache.VectorCache(cache, model_ex.identity).get(wav)
    [r] = process_file(wav, output_dir=tmp_path / "npz", model=str(ckpt), device="cpu")
    np.testing.assert_array_equal(cached, np.load(r.output)["mean"])


def test_precisions_side_by_side(separable, tmp_path, recwarn):
    ckpt = make_tiny_checkpoint(tmp_path / "export")
    fp32, bf16 = eval_extractors.build_extractors([f"tiny={ckpt}"], mfcc=False, random=False, device="cpu",
                                     precisions=("fp32", "bf16"))
    assert (fp32.name, bf16.name) == ("tiny", "tiny-bf16")
    assert bf16.identity == fp32.identity + "-bf16" and bf16.info["precision"] == "bf16"
    (_, a, _), = fp32.run([sorted(separable.glob("*.wav"))[0]])
    (_, b, _), = bf16.run([sorted(separable.glob("*.wav"))[0]])
    assert not np.array_equal(a, b) and np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_random_model_is_seeded():
    a, b, c = (eval_extractors.random_model(s, device="cpu") for s in (0, 0, 1))
    assert a.sha256 == b.sha256 != c.sha256
    assert a.frontend.scaler_min == (0.0,) * a.frontend.n_mels  # no model given: unit scaler


def test_cca_similarity():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 40)
    # the same view up to column order, scale and offset: the same principal subspace
    same, rho = features.cca_similarity(X, X[:, rng.permutation(40)] * rng.uniform(0.1, 10, 40) + 3)
    assert same > 0.999 and rho.size == 20  # 200 clips: at most 20 dimensions per side
    other, _ = features.cca_similarity(X, rng.randn(200, 6))
    assert other < 0.5
    # an embedding driven by 5 latent factors, 3 of which make up the centroid statistics
    latent = rng.randn(200, 5)
    emb = latent @ rng.randn(5, 64) + 0.05 * rng.randn(200, 64)
    stats = rng.randn(200, features.STATS_DIM)
    stats[:, features.stats_slices()["centroid"]] = latent[:, :3] @ rng.randn(3, 3)
    table = features.correlation_analysis(emb, stats)
    assert table["centroid"]["cca"] > 0.99 and table["centroid"]["cca_null"] < 0.5


def test_parse_model_arg():
    assert eval_extractors.parse_model_arg("aec=/work/runs/a/export") == ("aec", "/work/runs/a/export")
    assert eval_extractors.parse_model_arg("org/name@v1") == (None, "org/name@v1")
    assert eval_extractors.parse_model_arg("bundled") == (None, "bundled")
    assert eval_run.parse_seeds("3") == (0, 1, 2) and eval_run.parse_seeds("4,7") == (4, 7)


def test_parallel_fits_same_results():
    rng = np.random.RandomState(0)
    labels = np.asarray([str(i % 3) for i in range(45)], dtype=object)
    X = (rng.randn(45, 6) + np.asarray([int(v) for v in labels])[:, None]).astype(np.float32)
    splits = {s: eval_protocol.make_splits(labels, None, 3, s)[0] for s in (0, 1)}
    settings = eval_protocol.ClassifierSettings(max_iter=100, seeds=(0, 1))
    assert eval_protocol.cross_validate(X, labels, splits, settings, jobs=1) == eval_protocol.cross_validate(X, labels, splits, settings, jobs=2)


def test_bad_file_is_reported_and_left_out(tmp_path):
    root = make_set(tmp_path / "bad", n_per_class=4)
    (root / "broken.wav").write_bytes(b"RIFF not really audio")
    with open(root / "labels.csv", "a") as f:
        f.write("broken.wav,low,low-rec9\n")
    res = run(root, tmp_path / "out", tmp_path / "cache", seeds=(0,), correlation=True)
    task = res["tasks"]["bad"]
    assert task["n_clips"] == 12 and len(task["failed_files"]) >= 1 and "broken.wav" in task["failed_files"][0]
    assert res["timings"]["bad"]["mfcc"]["failed"] == 1


def test_anchor_ablation_views_match_the_anchor_layout():
    from training.scripts.anchor_ablation import mfcc_views

    t = np.arange(22050, dtype=np.float32) / 22050
    y = np.sin(2 * np.pi * (200 + 300 * t) * t).astype(np.float32)
    mf = features._mfcc(features._power_spec(y), features.FEATURE_SR)
    views = mfcc_views(features.mfcc_anchor_from_audio(y)[None])
    np.testing.assert_allclose(views["static MFCC mean (20)"][0], mf.mean(axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(views["static MFCC mean and std, no deltas (40)"][0],
                               np.concatenate([mf.mean(axis=1), mf.std(axis=1)]), rtol=1e-5, atol=1e-4)
    assert {k: v.shape[1] for k, v in views.items()} == {
        "MFCC anchor (120)": 120, "means only (60)": 60, "stds only (60)": 60,
        "static MFCC mean and std, no deltas (40)": 40, "static MFCC mean (20)": 20}
