"""training/'s layout holds (no import loop, the trainer apart from corpus building, short modules), and
TrainConfig is the one place of the training settings and their defaults."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.trainer.config import CONFIGS, ConfigError, TrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "training"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each training module -> the training modules it imports anywhere in it (function-level imports too)."""
    modules = {_module_name(p): p for p in TRAINING.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_loop_in_training():
    graph = _imports()
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                pytest.fail("import loop: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_trainer_imports_no_corpus_or_evaluation_code():
    graph = _imports()
    for name, deps in graph.items():
        if name.startswith("training.trainer"):
            assert not {d for d in deps if d.startswith(("training.corpus", "training.evaluation", "training.scripts"))}, name
    code = "import sys, training.train; print(sorted(m for m in sys.modules if m.startswith('training')))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=REPO).stdout.replace("'", '"'))
    assert loaded and all(m == "training" or m.startswith(("training.train", "training.trainer")) for m in loaded), loaded


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in TRAINING.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_the_recipes_load_through_trainconfig():
    assert TrainConfig.from_dict(json.loads((CONFIGS / "paper.json").read_text())) == TrainConfig()  # the defaults
    cpu = load_config(CONFIGS / "cpu.json")
    assert (cpu.optimizer, cpu.lr_schedule, cpu.conv_dropout, cpu.epochs) == ("adamw", "cosine", "channel", 30)
    shipped = load_config(CONFIGS / "cpu.json", ["variant=e-c", "epochs=22", "mix_p=0.25", "lr=0.0005",
                                                 "lambda_audio_audio=1", "init_from=bundled"])
    assert shipped.lambda_audio_audio == 1.0 and shipped.init_from == "bundled" and shipped.batch_size == 128


def test_unknown_keys_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"--set: unknown key 'mixp'; valid keys: variant, .*mix_p"):
        load_config(CONFIGS / "cpu.json", ["mixp=0.25"])
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"epochs": 3, "learning_rate": 0.1}))
    with pytest.raises(ConfigError, match=rf"{recipe}: unknown key 'learning_rate'; valid keys: "):
        load_config(recipe)
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        TrainConfig.of({"epoch": 3})
    with pytest.raises(ConfigError, match="optimizer='lamb': must be one of sgd, adam, adamw"):
        load_config(None, ["optimizer=lamb"])
    with pytest.raises(ConfigError, match="bf16='yes': must be bool"):
        load_config(None, ["bf16=yes"])
    with pytest.raises(ConfigError, match="epochs=2.5: must be int"):
        load_config(None, ["epochs=2.5"])


def test_train_command_names_the_unknown_key():
    result = subprocess.run([sys.executable, "-m", "training.train", "--data", "x", "--out", "y", "--set", "lrr=1"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "unknown key 'lrr'" in result.stderr and "valid keys:" in result.stderr


def test_a_run_config_gives_back_its_settings():
    run_config = {**TrainConfig(variant="e-c", epochs=3).to_dict(), "tags": ["a"], "frontend": {}, "data": "prepared"}
    assert TrainConfig.from_run(run_config) == TrainConfig(variant="e-c", epochs=3)
    del run_config["view_shift_frames"]  # a run older than the setting trained with its default
    assert TrainConfig.from_run(run_config).view_shift_frames == 0
