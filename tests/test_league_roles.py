"""League roles on real Ray + vLLM: a main agent, a main exploiter and a league exploiter learn at
once, each plays whom its role says, snapshots join by the role's rule, and the main exploiter
starts over from the starting policy after each of its snapshots; a resumed run goes on with all three.
Every learning agent's weights go to its generator over vLLM's weight-transfer engine (gloo): a
reset exploiter answering exactly as v0 did shows the transfer delivers the weights bit for bit."""
from pathlib import Path

from conftest import read_metrics, tiny_run

from cluster.cli import main
from cluster.config import parse_config
from cluster.run import run_self_play
from judge.verdict import SCORE_OF_WINNER
from league.league import CURRENT, GameResult, League
from league.records import GAME_SCHEMA, read_tables


def test_alphastar_roles_play_snapshot_and_reset(ray_cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = parse_config(
        tiny_run(
            run_dir,
            self_play={"iterations": 4, "games_per_iteration": 96, "save_every": 2},
            league={"matchmaking": "alphastar", "roles": {"min_iterations": 1, "max_iterations": 2, "games_per_iteration": 64}},
            generator={"weight_transfer": "gloo", "snapshot_replicas": 1},  # the snapshots on an engine of their own
        )
    )
    summary = run_self_play(config, show_progress=False)
    league = League.load(run_dir / "league.json")
    assert league.agents == {CURRENT: "main", "main_exploiter": "main_exploiter", "league_exploiter": "league_exploiter"}
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    by_agent = {a: [g for g in games if g["policy_a"] == a] for a in league.agents}
    assert all(len([g for g in by_agent[a] if g["round"] == 1]) == n for a, n in [(CURRENT, 96), ("main_exploiter", 64), ("league_exploiter", 64)])
    snapshots = {s.name: s for s in league.population + league.retired}
    # whom each role plays: the main exploiter the main agent (live) or its snapshots; the league
    # exploiter only snapshots; the main agent itself (live), snapshots of everyone
    assert {g["policy_b"] for g in by_agent["main_exploiter"]} <= {CURRENT} | {n for n, s in snapshots.items() if s.player == CURRENT}
    assert CURRENT in {g["policy_b"] for g in by_agent["main_exploiter"]}
    assert {g["policy_b"] for g in by_agent["league_exploiter"]} <= set(snapshots)
    assert CURRENT in {g["policy_b"] for g in by_agent[CURRENT]}
    # with max_iterations 2 every agent has a snapshot by iteration 2, saved as a loadable checkpoint
    for agent in ("main_exploiter", "league_exploiter"):
        own = [s for s in snapshots.values() if s.player == agent]
        assert own and all((run_dir / s.checkpoint / "config.json").is_file() for s in own)
        assert not any(Path(s.checkpoint).is_absolute() for s in own)  # a moved run reads its own
        assert all(Path(s.checkpoint).name == s.name for s in own)
    rows = read_metrics(run_dir)[1:]
    resets = [(r["iteration"], r["exploiters"]["main_exploiter"]) for r in rows if r["exploiters"]["main_exploiter"]["reset"]]
    assert resets, "a main exploiter starts over after every snapshot"
    start_accuracy = read_metrics(run_dir)[0]["accuracy"]
    by_iteration = {r["iteration"]: r["exploiters"]["main_exploiter"] for r in rows}
    for it, x in resets:
        assert x["admitted"].startswith("main_exploiter-v") and x["pairs"] == 0
        assert x["version"] > int(x["admitted"].rsplit("-v", 1)[1])  # new weights, a new version
        assert it == 1 or x["version"] > by_iteration[it - 1]["version"]
        # it serves the starting policy's weights again: the same greedy answers as v0
        assert x["accuracy"] == start_accuracy, (it, x)
    # versions keep counting through resets, and the games say which version played
    versions = [r["exploiters"]["main_exploiter"]["version"] for r in rows]
    assert versions == sorted(versions)
    assert summary["exploiters"]["league_exploiter"]["role"] == "league_exploiter"

    # resumed from its saved state as an asynchronous run (the main learner one round behind play,
    # the exploiters in step with each row), every agent goes on where it was
    assert all((run_dir / "state" / "agents" / a / "learner.json").is_file() for a in ("main_exploiter", "league_exploiter"))
    assert main(["run", "--resume", str(run_dir), "--iterations", "6", "--set", "self_play.max_staleness=1", "--quiet"]) == 0
    rows = read_metrics(run_dir)[1:]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["staleness"] for r in rows[4:]] == [0, 1] and rows[5]["played_by"] == rows[4]["version"] - 1
    for agent in ("main_exploiter", "league_exploiter"):
        versions = [r["exploiters"][agent]["version"] for r in rows]
        assert versions == sorted(versions) and versions[-1] > 0, (agent, versions)
    resumed = League.load(run_dir / "league.json")
    assert resumed.agents == league.agents
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    assert sorted({g["round"] for g in games if g["policy_a"] == "league_exploiter"}) == [1, 2, 3, 4, 5, 6]
    replay = League(resumed.settings)
    replay.record([GameResult(g["policy_a"], g["policy_b"], SCORE_OF_WINNER[g["winner"]]) for g in games])
    assert replay.results == resumed.results  # no game lost or counted twice across the restart
