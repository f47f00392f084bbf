"""Every shipped recipe parses and validates; the GPU ones once their paths are filled in."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cluster.config import RECIPES, parse_config

SHIPPED = sorted(RECIPES.glob("*.yaml"))


def _filled(node, model: Path, data: Path):
    """The recipe with its FILL_IN paths pointed at a checkpoint and a data file."""
    if isinstance(node, dict):
        return {k: _filled(v, model, data) for k, v in node.items()}
    if isinstance(node, str) and node.startswith("FILL_IN"):
        return str(data / Path(node).name) if node.endswith(".jsonl") else str(model)
    return node


def long_context(model: Path, root: Path) -> Path:
    """The tiny model standing in for a GPU recipe's: with the real model's 32k positions, so the
    recipe's own max_model_len is checked against a checkpoint that can take it (rotary: no weight changes)."""
    stand_in = Path(shutil.copytree(model, root / "stand-in"))
    config = json.loads((stand_in / "config.json").read_text())
    (stand_in / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 32768}))
    return stand_in


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_validates(recipe: Path, tiny_model: Path, tmp_path: Path) -> None:
    for part, numbers in (("train", range(40)), ("test", range(40, 50))):
        (tmp_path / f"gsm8k-{part}.jsonl").write_text("".join(
            json.dumps({"question": f"Tom has {i} apples and buys 2. How many?", "answer": str(i + 2)}) + "\n" for i in numbers))
    raw = yaml.safe_load(recipe.read_text())
    config = parse_config(_filled(raw, long_context(tiny_model, tmp_path), tmp_path), source=recipe.name)
    task = config.task.build(config.seed)
    assert task.held_out() and task.train(2, np.random.default_rng(0))


def test_the_recipes_this_readme_names_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {"default.yaml", "smollm2-arithmetic.yaml", "qwen2.5-0.5b-gsm8k.yaml", "qwen2.5-1.5b-gsm8k.yaml"} <= names
    readme = (RECIPES.parent.parent / "README.md").read_text()
    assert all(name in readme for name in names)
