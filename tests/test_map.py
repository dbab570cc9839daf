"""coala-embed map: a standalone page that headless Chromium renders with one point per file."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from coala_embed import load_model, process_file
from coala_embed.cli import main
from coala_embed.mapview import build_map, project

from conftest import make_checkpoint, write_wav

pytest.importorskip("plotly")
CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return load_model(make_checkpoint(tmp_path_factory.mktemp("ckpt_m"), seed=1, n_filters=8), device="cpu")


@pytest.fixture(scope="module")
def collection(tmp_path_factory, small_model):
    """Six sounds in two folders, embedded beside themselves (.npz) and into a Parquet table."""
    d = tmp_path_factory.mktemp("lib")
    paths = []
    for i, f in enumerate((200, 400, 800, 1600, 3200, 6400)):
        folder = d / ("tones" if i < 3 else "high")
        folder.mkdir(exist_ok=True)
        paths.append(write_wav(folder / f"s{f}.wav", 2.5 + i % 2, 22050, freq=f, seed=i))
    process_file(paths, model=small_model)  # .npz beside each file
    process_file(paths, output_dir=d / "table", output_format="parquet", model=small_model)
    return d, paths


def chromium(*args, timeout=120):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_projection_shapes():
    x = np.random.default_rng(0).standard_normal((40, 72)).astype(np.float32)
    xy, used = project(x, "pca")
    assert xy.shape == (40, 2) and used == "pca"
    assert project(x[:2], "auto")[0].shape == (2, 2)


def test_page_data_hover_and_audio_paths(collection, small_model, tmp_path):
    d, paths = collection
    out = d / "map.html"
    info = build_map(d / "table", out, png=tmp_path / "map.png", model=small_model, projection="pca")
    assert info["points"] == 6 and (tmp_path / "map.png").stat().st_size > 1000
    page = out.read_text()
    assert "<script src=" not in page  # plotly.js is inside: opens from disk, no network
    data = json.loads(re.search(r'id="coala-map-data">(.*?)</script>', page, re.S).group(1))
    assert sorted(p["file"] for p in data) == sorted(paths)
    assert {p["group"] for p in data} == {str(d / "tones"), str(d / "high")}  # auto: parent folder
    assert all((out.parent / p["audio"]).resolve() == __import__("pathlib").Path(p["file"]).resolve() for p in data)
    assert all(p["tags"].count("(") == 3 and abs(p["duration"] - round(p["duration"] * 2) / 2) < 0.01 for p in data)


def test_hover_tags_are_those_coala_embed_tags_prints(collection, small_model, tmp_path):
    """With a tag head (a random one here) the sound tags are ranked by it, on the map as on the command line."""
    import dataclasses

    import soundfile as sf

    from coala_embed import predict_tags
    from coala_embed.tag_head import TagHead
    from coala_embed.vocabulary import Vocabulary

    rng = np.random.default_rng(0)
    tags = small_model.tags[::3]
    d, hidden = small_model.embedding_size, 16
    head = TagHead.from_state({"w1": rng.standard_normal((d, hidden)), "b1": rng.standard_normal(hidden),
                               "w2": rng.standard_normal((hidden, len(tags))), "b2": rng.standard_normal(len(tags))},
                              tags, d)
    model = dataclasses.replace(small_model, tag_head=head, tag_vectors=None,
                                vocabulary=Vocabulary(list(small_model.tags), {"Test": tags}, {}))
    out = tmp_path / "map.html"
    build_map(collection[0] / "table", out, model=model, projection="pca")
    data = json.loads(re.search(r'id="coala-map-data">(.*?)</script>', out.read_text(), re.S).group(1))
    for p in data:
        y, sr = sf.read(p["file"])
        expected = predict_tags(y, sr, top_k=3, model=model)
        assert p["tags"] == ", ".join(f"{t} ({s:.2f})" for t, s in expected)
        assert all(t in tags for t, _ in expected)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian: apt-get install chromium)")
def test_chromium_renders_one_point_per_file_and_filters(collection, small_model, tmp_path):
    d, paths = collection
    out = tmp_path / "npzmap.html"
    r = CliRunner().invoke(main, ["map", str(d), "-o", str(out), "--projection", "pca", "--model",
                                  small_model.source, "--color-by", "tag"])
    assert r.exit_code == 0, r.output
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=900,700", out.as_uri())
    import matplotlib.image
    img = matplotlib.image.imread(shot)
    assert img.shape[:2] == (700, 900) and np.unique(img.reshape(-1, img.shape[2])[:, :3], axis=0).shape[0] > 20
    dom = chromium("--dump-dom", out.as_uri() + "#filter=s1600").stdout  # the text box, set from the URL
    points = re.findall(r'<path class="point[ "][^>]*>', dom)  # Plotly draws each marker as one SVG path
    assert len(points) == len(paths)
    shown = [p for p in points if "opacity: 0.06" not in p]  # the filter dims the others
    assert len(shown) == 1 and "1 of 6 files" in dom
