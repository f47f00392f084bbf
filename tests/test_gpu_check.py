"""bench/gpu_check.sh, the one script a bare GPU machine runs, works: on CPU it runs the same
code on a small model (the learner's arms and the hand-off to another process, whose receiver
must end up holding the sender's weights), and the learner and the hand-off import neither Ray
nor vLLM, which that machine lacks."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("ray", "vllm"):
            raise ImportError("this machine has no " + name)
sys.meta_path.insert(0, Block())
sys.path[:0] = [{root!r}, {bench!r}]
import learner.learner, learner.lora, learner.shards, learner.tiny_model, gpu_check
"""


def test_the_learner_and_the_hand_off_import_without_ray_or_vllm() -> None:
    code = BLOCK.format(root=str(ROOT), bench=str(ROOT / "bench"))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


def test_gpu_check_runs_its_code_on_cpu() -> None:
    out = subprocess.run(["bash", "bench/gpu_check.sh", "--device", "cpu", "--small", "--steps", "1", "--repeats", "2"], cwd=ROOT,
                         env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for line in ("full no checkpointing", "lora checkpointing", "shared and copied in:", "in-process copy bound:", "bench/gpu.py) not run"):
        assert line in out.stdout, out.stdout
