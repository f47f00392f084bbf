from pathlib import Path

import pytest
import yaml

from cluster.cli import main
from cluster.config import ConfigError, load_recipe, parse_config
from learner.lora import LoRAOptions


def test_default_recipe_loads() -> None:
    config = load_recipe()
    assert config.task.digits == 3
    assert config.league.admission_threshold == 0.6


def test_unknown_key_names_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"dpo": {"betta": 0.1}})
    message = str(err.value)
    assert "dpo.betta: unknown key" in message
    assert "beta" in message and "learning_rate" in message


def test_negative_learning_rate_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"dpo\.learning_rate: .*greater than 0"):
        parse_config({"dpo": {"learning_rate": -1e-4}})


def test_missing_model_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.path.*leave model\.path out"):
        parse_config({"model": {"path": str(tmp_path / "nowhere")}})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_recipe(recipe)


def test_dotted_overrides_apply() -> None:
    config = load_recipe(None, {"dpo.beta": 0.25, "self_play.iterations": 2})
    assert config.dpo.beta == 0.25 and config.self_play.iterations == 2


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"unknown_section": {}}, "unknown_section: unknown key"),
        ({"dpo": {"learning_rate": -1.0}}, "dpo.learning_rate:"),
        ({"model": {"path": "/definitely/not/a/model"}}, "model.path"),
        ({"data": {"preferences": "/no/such/file.jsonl"}}, "data.preferences"),
    ],
)
def test_cli_refuses_bad_config_and_writes_nothing(tmp_path: Path, bad: dict, key: str, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({**bad, "run_dir": str(run_dir)}))
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"selfplay: {recipe}: ") and key in err  # one line naming the key
    assert not run_dir.exists()


def test_preference_file_contents_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"prompt": "p", "rejected": "r"}\n')
    with pytest.raises(ConfigError, match=r"data: .*lacks column\(s\) \['chosen'\]"):
        parse_config({"data": {"preferences": str(prefs)}})


def test_unknown_key_inside_a_list_of_sections_names_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"judge\.constitution\.0\.wieght: unknown key; allowed here: label, model, name, options, rule, weight"):
        parse_config({"judge": {"constitution": [{"name": "p", "rule": "max_length", "options": {"max_chars": 3}, "wieght": 1}]}})


@pytest.mark.parametrize(
    "principle, message",
    [
        ({"name": "p", "rule": "matches", "options": {"pattern": "(unclosed"}}, "rule 'matches' fails"),
        ({"name": "p", "rule": "max_length", "options": {"max_chars": 0}}, "max_chars must be at least 1"),
    ],
)
def test_principle_options_are_checked(principle: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"judge": {"constitution": [principle]}})


def test_held_out_pool_too_small_is_refused() -> None:
    with pytest.raises(ConfigError, match="lower held_out_every or raise digits"):
        parse_config({"task": {"digits": 1, "held_out_every": 50}})


def test_overwrite_never_deletes_a_directory_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["run", "--run-dir", str(precious), "--overwrite", "--set", "self_play.iterations=1"]) == 2
    assert "holds no selfplay run" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"


def test_head_size_the_cpu_engine_cannot_serve_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"model\.tiny: .*head size .*choose num_heads"):
        parse_config({"model": {"tiny": {"hidden_size": 64, "num_heads": 4}}})


def test_missing_preference_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.preferences .* is not a file"):
        parse_config({"data": {"preferences": str(tmp_path / "none.jsonl")}})


def test_weight_transfer_follows_the_hardware_and_the_gpu_path_is_checked() -> None:
    assert parse_config({}).transfer_backend is None  # CPU: the object store
    gpus = {"generator": {"num_gpus": 1}, "cluster": {"num_learner_gpus": 1}}
    assert parse_config(gpus).transfer_backend == "nccl"
    assert parse_config({**gpus, "generator": {"num_gpus": 1, "weight_transfer": "object_store"}}).transfer_backend is None
    assert parse_config({"generator": {"weight_transfer": "gloo"}}).transfer_backend == "gloo"
    with pytest.raises(ConfigError, match="nccl broadcasts from the learner's GPU"):
        parse_config({"generator": {"weight_transfer": "nccl", "num_gpus": 1}})
    # a learner and generators sharing one GPU: NCCL cannot join them, so auto keeps the object store
    shared = {"generator": {"num_gpus": 0.5}, "cluster": {"num_learner_gpus": 0.5}}
    assert parse_config(shared).transfer_backend is None
    with pytest.raises(ConfigError, match="two ranks on one GPU"):
        parse_config({**shared, "generator": {"num_gpus": 0.5, "weight_transfer": "nccl"}})
    with pytest.raises(ConfigError, match="set generator.num_gpus to 1"):
        parse_config({"generator": {"tensor_parallel_size": 2}})
    assert parse_config({"generator": {"tensor_parallel_size": 2, "num_gpus": 1}}).generator.tensor_parallel_size == 2
    with pytest.raises(ConfigError, match="use nccl"):
        parse_config({"generator": {"tensor_parallel_size": 2, "num_gpus": 1, "weight_transfer": "gloo"}})
    # a generator on part of a GPU asks vLLM for that part of its memory
    assert parse_config(shared).generator.gpu_memory_utilization == 0.45
    assert parse_config(gpus).generator.gpu_memory_utilization == parse_config({}).generator.gpu_memory_utilization == 0.9


def test_snapshots_answered_by_the_current_policys_engines_need_weights_it_can_load_back() -> None:
    shared = {"generator": {"snapshot_replicas": 0}}
    assert parse_config(shared).generator.snapshot_replicas == 0
    with pytest.raises(ConfigError, match="snapshot_replicas: 0 .* over vLLM's gloo transfer engine: set generator.weight_transfer: object_store"):
        parse_config({"generator": {"snapshot_replicas": 0, "weight_transfer": "gloo"}})
    with pytest.raises(ConfigError, match="snapshots: adapters serves the league .*: set learner.lora.broadcast: adapter .*generator.snapshot_replicas >= 1"):
        parse_config({**shared, "learner": {"lora": {}}})
    assert parse_config({**shared, "learner": {"lora": {"snapshots": "merged"}}}).learner.lora.snapshots == "merged"
    # the policy as an adapter on v0: the same engine serves every version, the snapshots' too
    assert parse_config({**shared, "learner": {"lora": {"broadcast": "adapter"}}}).learner.lora.broadcast == "adapter"
    with pytest.raises(ConfigError, match="broadcast: adapter serves every version as an adapter on v0.*set learner.lora.snapshots: adapters"):
        parse_config({"learner": {"lora": {"broadcast": "adapter", "snapshots": "merged"}}})


def test_lora_weights_go_by_the_object_store_and_loss_weights_are_checked() -> None:
    gpus = {"generator": {"num_gpus": 1}, "cluster": {"num_learner_gpus": 1}}
    assert parse_config(gpus).transfer_backend == "nccl"
    assert parse_config({**gpus, "learner": {"lora": {"rank": 8}}}).transfer_backend is None  # auto: the object store
    with pytest.raises(ConfigError, match="learner.lora sends its updates .merged weights or adapters. through Ray's object store"):
        parse_config({"learner": {"lora": {}}, "generator": {"weight_transfer": "gloo"}})
    with pytest.raises(ConfigError, match="negative weight"):
        parse_config({"dpo": {"loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0, -1.0]}})
    with pytest.raises(ConfigError, match="target_modules"):
        parse_config({"learner": {"lora": {"target_modules": []}}})
    with pytest.raises(ConfigError, match="vLLM serves adapters of rank 512 at most .snapshots: adapters.*snapshots: merged"):
        parse_config({"learner": {"lora": {"rank": 1024}}})
    assert parse_config({"learner": {"lora": {"rank": 1024, "snapshots": "merged"}}}).learner.lora.rank == 1024
    assert [LoRAOptions(rank=r).served_rank for r in (1, 4, 16, 17, 300)] == [1, 8, 16, 32, 320]
    with pytest.raises(ConfigError, match="learner.ranks > 1. does not take learner.lora"):
        parse_config({"learner": {"ranks": 2, "lora": {}}})
    with pytest.raises(ConfigError, match="learner group .* not vLLM's gloo transfer engine"):
        parse_config({"learner": {"ranks": 2}, "generator": {"weight_transfer": "gloo"}})
    assert parse_config({**gpus, "learner": {"ranks": 2}}).transfer_backend is None  # auto: the object store
    with pytest.raises(ConfigError, match="eval.round_robin plays head-to-head games.*needs head_to_head in self_play.modes"):
        parse_config({"eval": {"round_robin": {}}, "self_play": {"modes": ["adversarial"]}})


def test_the_asynchronous_pipeline_takes_league_roles_and_learner_groups() -> None:
    assert parse_config({}).self_play.max_staleness == 0  # synchronous by default
    assert parse_config({"self_play": {"max_staleness": 2}}).self_play.max_staleness == 2
    with pytest.raises(ConfigError, match="max_staleness"):
        parse_config({"self_play": {"max_staleness": -1}})
    assert parse_config({"self_play": {"max_staleness": 1}, "league": {"matchmaking": "alphastar"}}).self_play.max_staleness == 1
    assert parse_config({"self_play": {"max_staleness": 1}, "learner": {"ranks": 2}}).learner.ranks == 2
