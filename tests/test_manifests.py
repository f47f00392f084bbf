"""The shipped cluster manifests and Grafana board parse and agree with the project: the Ray
version it pins, token authentication, GPU generator nodes with the custom resource the
recipe sends generators to, a recipe that validates, and metrics the code really reports."""
import json
import re
from pathlib import Path

import yaml

from actors.generator import TOKEN_METRICS
from cluster.config import parse_config
from cluster.metrics import RunMetrics

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "cluster" / "manifests"
RAY_VERSION = re.search(r"^ray==([\d.]+)$", (ROOT / "requirements" / "cpu.txt").read_text(), re.M).group(1)


def _start_resources(params: dict) -> dict:
    return json.loads(json.loads(params["resources"]))


def test_kuberay_rayjob_runs_a_valid_recipe_on_gpu_generator_nodes() -> None:
    configmap, rayjob = yaml.safe_load_all((MANIFESTS / "rayjob.yaml").read_text())
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec, cluster = rayjob["spec"], rayjob["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == RAY_VERSION == "2.60.0"
    assert cluster["authOptions"]["mode"] == "token" and cluster["enableInTreeAutoscaling"] is True
    assert spec["shutdownAfterJobFinishes"] is True
    # the entrypoint runs the ConfigMap's recipe, joined to the RayJob's cluster, into the runs volume
    words = spec["entrypoint"].split()
    assert words[:2] == ["selfplay", "run"] and "cluster.address=auto" in words
    recipe_path, run_dir = Path(words[2]), Path(words[words.index("--run-dir") + 1])
    head = cluster["headGroupSpec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in head["volumes"]}
    assert mounts["recipe"] == str(recipe_path.parent) and volumes["recipe"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert str(run_dir).startswith(mounts["runs"]) and "persistentVolumeClaim" in volumes["runs"]
    recipe = parse_config(yaml.safe_load(configmap["data"][recipe_path.name]), source="rayjob recipe")
    # generators ask for a resource only the GPU worker group offers, one GPU each
    (workers,) = cluster["workerGroupSpecs"]
    offered = _start_resources(workers["rayStartParams"])
    assert set(recipe.generator.resources) <= set(offered) and recipe.generator.num_gpus == 1
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1 and workers["maxReplicas"] >= recipe.cluster.autoscale.max_generators // 2
    assert "generator_node" not in _start_resources(cluster["headGroupSpec"]["rayStartParams"])
    assert all(c["image"] == head["containers"][0]["image"] for c in workers["template"]["spec"]["containers"])


def test_cluster_launcher_config_has_token_auth_and_gpu_generator_nodes() -> None:
    config = yaml.safe_load((MANIFESTS / "ray-cluster.yaml").read_text())
    assert config["docker"]["image"].startswith(f"rayproject/ray:{RAY_VERSION}-") and "gpu" in config["docker"]["image"]
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    generators = [t for name, t in types.items() if "generator_node" in t.get("resources", {})]
    assert generators and all(t["max_workers"] >= t["min_workers"] >= 1 for t in generators)
    assert config["max_workers"] >= sum(t["max_workers"] for t in generators)
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in commands)
    assert "--head" in " ".join(config["head_start_ray_commands"]) and "--address" in " ".join(config["worker_start_ray_commands"])
    assert "/home/ray/.ray/auth_token" in config["file_mounts"] and "/home/ray/selfplay" in config["file_mounts"]
    assert any("[gpu]" in c and "/home/ray/selfplay" in c for c in config["setup_commands"])
    assert {".venv", "runs"} <= set(config["rsync_exclude"])


def test_grafana_board_charts_only_metrics_the_code_reports() -> None:
    board = json.loads((ROOT / "cluster" / "grafana" / "selfplay.json").read_text())
    reported = {m._name for m in vars(RunMetrics("r")).values() if hasattr(m, "_name")} | set(TOKEN_METRICS)
    charted = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"ray_(selfplay_[a-z_]+)", target["expr"]):
                charted.add(re.sub(r"_(total|bucket|count|sum)$", "", name))
    assert charted <= reported, charted - reported
    assert reported - charted <= {"selfplay_iteration", "selfplay_generation_tokens_per_second"}  # the run picker; a per-call gauge
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "run"}
