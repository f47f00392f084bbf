"""A run resumed from its directory goes on from its saved state, even after a crash mid-iteration."""
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_metrics, tiny_run, tree_digest
from readback import mlflow_run

from cluster.cli import main
from cluster.config import parse_config
from cluster.resume import ResumeError
from cluster.run import resume_self_play, run_self_play
from cluster.run_dir import MARKER
from judge.verdict import SCORE_OF_WINNER
from league.league import GameResult, League
from league.records import GAME_SCHEMA, PAIR_SCHEMA, read_tables

GAMES = 64


def test_resume_after_a_crash_mid_iteration(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    config = parse_config(tiny_run(run_dir, self_play={"iterations": 2, "games_per_iteration": GAMES},
                                   league={"admission_threshold": 0.01, "min_admission_games": 1, "matchmaking": "uniform"},
                                   logging={"sinks": ["mlflow"]}))
    first = run_self_play(config, show_progress=False)
    saved = json.loads((run_dir / "state" / "league.json").read_text())
    assert json.loads((run_dir / "state" / "driver.json").read_text())["iteration"] == 2
    assert saved == json.loads((run_dir / "league.json").read_text())

    # a crash half-way through iteration 3: its games written, the league updated, a metrics row out
    games = read_tables(run_dir / "games", GAME_SCHEMA)
    pq.write_table(games.slice(0, 10).set_column(1, "round", pa.array([3] * 10, pa.int32())), run_dir / "games" / "round-00003.parquet")
    league = League.load(run_dir / "league.json")
    league.record([GameResult("current", "v0", 1.0)] * 50)
    league.save(run_dir / "league.json")
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 3, "accuracy": 0.0}) + "\n")

    refuse_damaged_states(run_dir, tmp_path, capsys)
    # a run directory moved elsewhere reads its own checkpoints (the league keeps them relative)
    run_dir = run_dir.rename(tmp_path / "moved")
    with pytest.warns(RuntimeWarning, match="MLflow artifacts are kept at .*/run/mlruns/.*the run directory was moved"):
        assert main(["run", "--resume", str(run_dir), "--iterations", "4", "--quiet"]) == 0  # MLflow's file store: absolute paths
    summary = json.loads(capsys.readouterr().out)
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[3]["accuracy"] != 0.0 or rows[3]["games"] == GAMES  # the crashed row was replaced by a real one
    assert [r["version"] for r in rows[1:]] == [1, 2, 3, 4]  # the learner went on from version 2
    assert summary["iterations"] == 4 and summary["initial_accuracy"] == first["initial_accuracy"]
    on_disk = read_tables(run_dir / "games", GAME_SCHEMA)
    assert on_disk.num_rows == 4 * GAMES and sorted(set(on_disk.column("round").to_pylist())) == [1, 2, 3, 4]
    # the league went on from its saved state: replaying every game on disk gives its win-rate matrix
    resumed = League.load(run_dir / "league.json")
    replay = League(resumed.settings)
    replay.record([GameResult(g["policy_a"], g["policy_b"], SCORE_OF_WINNER[g["winner"]]) for g in on_disk.to_pylist()])
    assert replay.results == resumed.results
    assert [s.name for s in resumed.population][: len(saved["population"])] == [s["name"] for s in saved["population"]]
    assert json.loads((run_dir / "state" / "driver.json").read_text())["iteration"] == 4
    # the tracker's run went on too (the same MLflow run, reopened): every row of the finished run once
    metrics, _ = mlflow_run(run_dir, json.loads((run_dir / "trackers.json").read_text())["runs"]["mlflow"])
    assert metrics["accuracy"] == {r["iteration"]: [pytest.approx(r["accuracy"])] for r in rows}


def test_an_asynchronous_run_resumes_losing_no_game_and_training_no_pair_twice(ray_cluster, tmp_path: Path) -> None:
    """`self_play.max_staleness: 2`: stopped (out of time) after its first row with rounds 2 and 3
    played and not yet trained on, then crashed after writing a row it had not saved; resumed
    with `max_staleness: 1`, it trains on round 2 (one version stale) and drops round 3 (two):
    no round's games are lost or repeated, and no pair is trained on twice."""
    run_dir, games = tmp_path / "run", 32
    recipe = tiny_run(run_dir, self_play={"iterations": 4, "games_per_iteration": games, "max_staleness": 2, "max_seconds": 0.001},
                      league={"admission_threshold": 0.01, "min_admission_games": 1, "matchmaking": "uniform"})
    run_self_play(parse_config(recipe), show_progress=False)
    driver = json.loads((run_dir / "state" / "driver.json").read_text())
    assert driver["iteration"] == 1 and [r["iteration"] for r in driver["waiting"]] == [2, 3]
    assert json.loads((run_dir / "summary.json").read_text())["untrained_rounds"] == [2, 3]
    with open(run_dir / "metrics.jsonl", "a") as f:  # a row written, then the crash before its state was saved
        f.write(json.dumps({"iteration": 2, "accuracy": 0.0}) + "\n")

    recipe["self_play"].update(max_seconds=None, max_staleness=1)
    damaged = Path(shutil.copytree(run_dir, tmp_path / "damaged"))  # a waiting round's pairs lost: refused, nothing changed
    (damaged / "pairs" / "round-00003.parquet").unlink()
    before = tree_digest(damaged)
    with pytest.raises(ResumeError, match="round 3 waits for the learner"):
        resume_self_play(parse_config({**recipe, "run_dir": str(damaged)}), show_progress=False)
    assert tree_digest(damaged) == before
    with pytest.raises(ResumeError, match="played through iteration 3"):
        resume_self_play(parse_config({**recipe, "self_play": {**recipe["self_play"], "iterations": 2}}), show_progress=False)
    summary = resume_self_play(parse_config(recipe), show_progress=False)
    rows = read_metrics(run_dir)[1:]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4] and summary["iterations"] == 4
    assert [r["played_by"] for r in rows[:3]] == [0, 0, 0]  # the pipeline's first three rounds all played v0
    assert [r["staleness"] for r in rows[:2]] == [0, 1] and rows[2].get("stale_pairs_dropped") and rows[2]["pairs"] == 0
    assert rows[3]["staleness"] <= 1
    on_disk = read_tables(run_dir / "games", GAME_SCHEMA)
    assert on_disk.num_rows == 4 * games and sorted(set(on_disk.column("round").to_pylist())) == [1, 2, 3, 4]
    pairs = read_tables(run_dir / "pairs", PAIR_SCHEMA)
    assert sum(r["pairs"] for r in rows) == pairs.num_rows - pairs.column("round").to_pylist().count(3)  # each pair once, round 3's none
    assert rows[-1]["version"] == sum(1 for r in rows if r["pairs"])
    resumed = League.load(run_dir / "league.json")
    replay = League(resumed.settings)
    replay.record([GameResult(g["policy_a"], g["policy_b"], SCORE_OF_WINNER[g["winner"]]) for g in on_disk.to_pylist()])
    assert replay.results == resumed.results
    assert all(set(r["phase_s"]) >= {"play", "judging", "recording", "learning", "weight_sync", "evaluation", "waited_for_learner"}
               for r in rows)
    # snapshots admitted while the learner trained the next version are of the version that played (kept as served)
    admitted = [s for s in resumed.population if s.version > 0]
    assert admitted and all(s.version in {r["played_by"] for r in rows} for s in admitted)
    assert all((run_dir / s.checkpoint / "model.safetensors").is_file() for s in admitted)


def refuse_damaged_states(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Each damage a resume must refuse in one line, leaving every file of the run as it was."""
    damages = {
        "state/league.json": lambda d: (d / "state" / "league.json").unlink(),
        "optimizer.pt": lambda d: (d / "state" / "learner" / "optimizer.pt").unlink(),
        "metrics.jsonl": lambda d: (d / "metrics.jsonl").unlink(),
        "driver.json": lambda d: (d / "state" / "driver.json").write_text('{"iteration": 2'),
        "lacks rng, league_rng": lambda d: (d / "state" / "driver.json").write_text('{"iteration": 2, "version": 2}'),
    }
    capsys.readouterr()  # what the run printed so far
    for named, damage in damages.items():
        copy = Path(shutil.copytree(run_dir, tmp_path / "damaged"))
        damage(copy)
        before = tree_digest(copy)
        assert main(["run", "--resume", str(copy), "--iterations", "4", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert named in err and "damaged" in err and err.count("\n") == 1, err
        assert tree_digest(copy) == before
        shutil.rmtree(copy)
    before = tree_digest(run_dir)
    assert main(["run", "--resume", str(run_dir), "--iterations", "1", "--quiet"]) == 2
    assert "already past iteration 2" in capsys.readouterr().err
    assert tree_digest(run_dir) == before


def test_resume_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(f"run_dir: {run_dir}\n")
    (run_dir / MARKER).write_text("{}")
    assert main(["run", "--resume", str(run_dir), "--set", "dpo.beta=0.2"]) == 2
    assert "dpo.beta cannot change mid-run" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2  # a run that never saved a state
    assert "has no resumable state" in capsys.readouterr().err


def test_a_crash_mid_swap_falls_back_to_the_previous_state(tmp_path: Path) -> None:
    from cluster.resume import ResumePoint, driver_state

    point = ResumePoint(5, 4, {"a": 1}, {"b": 2}, {}, 12.5, tmp_path / "state" / "learner")
    old = tmp_path / ".state.old-4242"  # renamed away, and the new state never renamed in
    old.mkdir()
    (old / "driver.json").write_text(driver_state(point))
    (tmp_path / ".state.tmp-4242").mkdir()  # a half-written one
    assert ResumePoint.read(tmp_path) == point
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
