"""The whole loop on real Ray and real vLLM on CPU: records on disk agree with what was played."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import tiny_run
from transformers import AutoModelForCausalLM, AutoTokenizer

from cluster.config import parse_config
from cluster.retention import retention_problems
from cluster.run import run_self_play
from judge.verdict import SCORE_OF_WINNER
from league.league import GameResult, League
from league.records import GAME_SCHEMA, PAIR_SCHEMA, read_tables
from prompts.example import Example
from tasks.addition import AdditionTask
from tasks.base import metric


@pytest.fixture(scope="module")
def two_iterations(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("loop")
    run_dir = root / "run"
    external = root / "human.jsonl"
    external.write_text("".join(json.dumps({"prompt": f"{i}+1=", "chosen": str(i + 1)[::-1] + "0", "rejected": "0"}) + "\n" for i in range(9)))
    benchmark = root / "benchmark.jsonl"  # a retention task from a file: 2-digit sums, written out
    benchmark.write_text("".join(json.dumps({"prompt": f"{i:02d}+{i:02d}=", "answer": f"{2 * i:03d}"[::-1]}) + "\n" for i in range(12)))
    config = parse_config(
        tiny_run(
            run_dir,
            data={"preferences": str(external), "preference_ratio": 0.5},
            judge={"constitution": [{"name": "short", "rule": "max_length", "weight": 0.1, "options": {"max_chars": 2}}]},
            self_play={"iterations": 2, "games_per_iteration": 96},
            # admit every round so the opponent generator must switch snapshots
            league={"admission_threshold": 0.01, "min_admission_games": 1, "matchmaking": "uniform"},
            eval={"retention": [{"name": "two-digit", "digits": 2, "size": 32}, {"name": "file", "path": str(benchmark), "size": 10}],
                  "round_robin": {"every": 1, "games": 3}},
            logging={"sinks": ["tensorboard", "wandb", "mlflow"], "wandb_mode": "offline", "project": "selfplay-tests"},
        )
    )
    return run_self_play(config, show_progress=False), run_dir


def test_games_on_disk_equal_games_played(two_iterations) -> None:
    summary, run_dir = two_iterations
    games = read_tables(run_dir / "games", GAME_SCHEMA)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    played = sum(r.get("games", 0) for r in rows)
    assert games.num_rows == played == summary["games"] == 2 * 96
    assert len(set(games.column("game_id").to_pylist())) == games.num_rows
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for key in ("accuracy", "win_rate_vs_previous", "elo", "games", "games_per_s", "seconds"):
        assert key in rows[-1]


def test_rows_count_the_tokens_their_round_generated(two_iterations) -> None:
    """A round's `generated_tokens` are its answers' (the games' and the round-robin's, not the
    evaluation's): the character-level model writes a token per character, plus an end-of-sequence
    token where an answer ended on one (not in the text), so the count lies between the recorded
    characters and characters + answers; `tokens_per_s` is over the play phase."""
    _, run_dir = two_iterations
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    for row in rows[1:]:
        it = row["iteration"]
        robin = pq.read_table(run_dir / "round_robin" / f"round-{it:05d}.parquet").to_pylist()
        answers = [g[side] for g in games + robin if g["round"] == it for side in ("response_a", "response_b")]
        chars = sum(map(len, answers))
        assert chars <= row["generated_tokens"] <= chars + len(answers), (it, chars, len(answers))
        assert row["tokens_per_s"] == pytest.approx(row["generated_tokens"] / row["phase_s"]["play"])


def test_each_iteration_reports_intervals_ratings_and_diversity(two_iterations) -> None:
    summary, run_dir = two_iterations
    last = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    low, high = last["win_rate_vs_previous_ci"]
    assert low <= last["win_rate_vs_previous"] <= high
    assert set(last["elo_by_policy"]) == set(summary["snapshots"]) | {"current"}
    played = set(read_tables(run_dir / "games", GAME_SCHEMA).column("policy_b").to_pylist()) | {"current"}
    assert set(last["bt_by_policy"]) == played  # Bradley-Terry rates those with games
    for rating, lo, hi in last["bt_by_policy"].values():
        assert lo <= rating <= hi
    assert 0 < last["distinct_1"] <= 1 and 0 <= last["distinct_2"] <= 1 and 0 <= last["self_bleu"] <= 1
    assert isinstance(last["mode_collapse"], bool)


def test_every_pair_refers_to_a_recorded_decisive_game(two_iterations) -> None:
    _, run_dir = two_iterations
    games = {g["game_id"]: g for g in read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()}
    pairs = read_tables(run_dir / "pairs", PAIR_SCHEMA).to_pylist()
    decisive = [g for g in games.values() if g["winner"] != "tie" and g["response_a"] != g["response_b"]]
    assert len(pairs) == len(decisive)
    for pair in pairs:
        game = games[pair["game_id"]]
        winner = game["response_a"] if game["winner"] == "a" else game["response_b"]
        assert pair["chosen"] == winner and pair["prompt"] == game["prompt"]


def test_league_state_reloads_to_the_same_ratings(two_iterations) -> None:
    summary, run_dir = two_iterations
    league = League.load(run_dir / "league.json")
    assert league.ratings == pytest.approx(summary["elo_by_policy"])
    # the win-rate matrix on disk is exactly the tally of the games on disk, self-play's and the round-robin's
    replay = League(league.settings)
    score = SCORE_OF_WINNER
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    robin = read_tables(run_dir / "round_robin", GAME_SCHEMA).to_pylist()
    replay.record([GameResult(g["policy_a"], g["policy_b"], score[g["winner"]]) for g in games + robin])
    assert replay.results == league.results
    assert sum(n for _, n in league.results["current"].values()) == len(games) + sum("current" in (g["policy_a"], g["policy_b"]) for g in robin)
    assert league.current_version == max(g["version_a"] for g in games)
    assert [s.name for s in league.population] == summary["snapshots"]
    assert len(summary["snapshots"]) >= 2  # v0 plus at least one admitted snapshot
    for snap in league.population:
        assert not Path(snap.checkpoint).is_absolute()  # relative to the run, so a moved run reads its own
        assert (run_dir / snap.checkpoint / "config.json").is_file()
    opponents = set(read_tables(run_dir / "games", GAME_SCHEMA).column("policy_b").to_pylist())
    assert opponents <= {s.name for s in league.population}


def test_run_directory_holds_what_the_readme_promises(two_iterations) -> None:
    summary, run_dir = two_iterations
    for name in ("config.yaml", "league.json", "metrics.jsonl", "summary.json"):
        assert (run_dir / name).is_file(), name
    on_disk = json.loads((run_dir / "summary.json").read_text())
    for key in ("initial_accuracy", "final_accuracy", "snapshots", "elo_by_policy", "seconds"):
        assert key in on_disk
    assert pq.read_schema(next((run_dir / "games").glob("*.parquet"))).equals(GAME_SCHEMA)
    assert not list(run_dir.rglob(".*.tmp-*"))


def test_external_preferences_are_mixed_at_the_ratio(two_iterations) -> None:
    _, run_dir = two_iterations
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    pairs = read_tables(run_dir / "pairs", PAIR_SCHEMA)
    for row in rows:
        own = sum(1 for r in pairs.column("round").to_pylist() if r == row["iteration"])
        assert row["external_pairs"] == round(0.5 * own)
        assert row["pairs"] == own + row["external_pairs"]


def test_constitution_adherence_is_recorded_with_every_game(two_iterations) -> None:
    _, run_dir = two_iterations
    games = read_tables(run_dir / "games", GAME_SCHEMA).to_pylist()
    assert {g["judge"] for g in games} == {"constitutional(exact_answer)"}
    for g in games:
        [(name, (a, b))] = g["principles"]
        assert name == "short" and 0 <= a <= 1 and 0 <= b <= 1
        assert a == (1.0 if len(g["response_a"].strip()) <= 2 else 2 / len(g["response_a"].strip()))


def test_retention_is_scored_against_the_starting_policy(two_iterations) -> None:
    summary, run_dir = two_iterations
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    start = rows[0]["retention"]
    assert set(start) == {"two-digit", "file"} and rows[0]["retention_vs_start"] == {"two-digit": 0.0, "file": 0.0}
    for row in rows[1:]:
        assert row["retention_vs_start"] == pytest.approx({k: row["retention"][k] - start[k] for k in start})
    assert summary["retention_initial"] == start and summary["retention_final"] == rows[-1]["retention"]
    # the starting policy's score, recomputed apart: transformers' greedy answers of checkpoint v0
    config = parse_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    problems = retention_problems(config)
    assert len(problems["two-digit"]) == 32 and len(problems["file"]) == 10
    assert problems["file"][3] == Example("03+03=", "600")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "checkpoints" / "v0")
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "v0").eval()
    for name, probs in problems.items():
        answers = []
        for p in probs:
            ids = tokenizer(p.prompt, return_tensors="pt")["input_ids"]
            out = model.generate(ids, max_new_tokens=8, do_sample=False)
            answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        assert start[name] == metric(AdditionTask(), probs, answers), name


def test_the_report_draws_every_figure_the_run_has(two_iterations, tmp_path: Path) -> None:
    """`selfplay report` on this run (head-to-head, retention tasks, a constitution): every figure
    such a run has, as a PNG and inlined in one page that needs no other file, and its games."""
    from browser import drawn_figures

    from cluster.cli import main
    from report.figures import FIGURES

    _, run_dir = two_iterations
    assert main(["report", str(run_dir), "--output", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    drawn = ["held_out_metric", "win_rate_vs_previous", "skill_curve", "snapshot_ratings", "payoff_matrix", "diversity", "retention",
             "loss", "throughput", "generation", "phase_times"]
    for name in drawn:
        assert f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,' in page, name
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5000, name
    assert "Not in this run: fixed_opponents." in page  # no multi-turn games here
    assert "<h3>Round 1</h3>" in page and "<h3>Round 2</h3>" in page and 'src="http' not in page
    assert main(["report", str(tmp_path)]) == 2  # not a run: said so
    # in headless Chromium: every figure drawn (all but the multi-turn one, which test_multi_turn's Nim run draws), no error logged
    assert drawn_figures(tmp_path / "report" / "index.html", "report-addition") == [f for f in FIGURES if f != "fixed_opponents"]


def test_the_trackers_hold_the_rows_the_recipe_and_the_figures(two_iterations) -> None:
    """`logging.sinks`: TensorBoard, wandb (offline) and MLflow (a file store in the run) each
    have every row's metrics at its iteration, the recipe, and the report's figures at the end."""
    from readback import mlflow_run, tensorboard_scalars, wandb_history

    _, run_dir = two_iterations
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    accuracy = {r["iteration"]: r["accuracy"] for r in rows}
    tokens = {r["iteration"]: r["generated_tokens"] for r in rows[1:]}
    ids = json.loads((run_dir / "trackers.json").read_text())
    assert ids["logged_through"] == {"tensorboard": 2, "wandb": 2, "mlflow": 2}
    tb, images, _ = tensorboard_scalars(run_dir)
    assert tb["accuracy"] == pytest.approx(accuracy) and tb["generated_tokens"] == tokens
    assert tb["phase_s/play"] == pytest.approx({r["iteration"]: r["phase_s"]["play"] for r in rows[1:]})
    assert {"figures/held_out_metric", "figures/skill_curve", "figures/generation"} <= set(images)
    metrics, artifacts = mlflow_run(run_dir, ids["runs"]["mlflow"])
    assert metrics["accuracy"] == {i: [pytest.approx(a)] for i, a in accuracy.items()}
    assert "config.yaml" in artifacts and "figures/payoff_matrix.png" in artifacts
    history, configs, _ = wandb_history(run_dir)
    assert {i: h["accuracy"] for i, h in history.items()} == pytest.approx(accuracy)
    assert configs[0]["self_play"]["games_per_iteration"] == 96
    assert history[2]["figures/phase_times/_type"] == "image-file"


def test_the_round_robin_makes_snapshots_meet_and_stays_out_of_training(two_iterations) -> None:
    """Each iteration every two of the league's players meet on held-out prompts: round 1 v0 and
    the current policy, round 2 also v1 (admitted after round 1) against both, sides alternating.
    The games are rated (the league has snapshot-against-snapshot results) but give no pairs."""
    import pyarrow.parquet as pq

    from league.league import League

    _, run_dir = two_iterations
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first, second = (pq.read_table(run_dir / "round_robin" / f"round-{r:05d}.parquet").to_pylist() for r in (1, 2))
    meetings = [sorted((g["policy_a"], g["policy_b"])) for g in second]
    assert len(first) == 3 and len(second) == 3 * 3 == rows[2]["round_robin_games"]
    assert meetings.count(["v0", "v1"]) == 3
    assert sorted(g["policy_a"] for g in second if {g["policy_a"], g["policy_b"]} == {"v0", "v1"}) == ["v0", "v0", "v1"]  # turns as side a
    assert {g["mode"] for g in second} == {"round_robin"} and len({g["game_id"] for g in first + second}) == 9 + 3
    played_v1 = League.load(run_dir / "league.json").results["v0"]["v1"][1]
    assert played_v1 == 3
    pairs = [p.name for p in (run_dir / "pairs").iterdir()]
    assert not any("round_robin" in name for name in pairs)


def test_versions_rank_agreement_by_hand() -> None:
    from league.ratings import Rating
    from league.versions import VersionRating, metric_agreement

    def rated(version: int, rating: float) -> VersionRating:
        return VersionRating("current", version, f"current@v{version}", 10, Rating(rating, rating - 5, rating + 5))

    metrics = [{"version": 0, "accuracy": 0.1}, {"version": 1, "accuracy": 0.3}, {"version": 2, "accuracy": 0.2}, {"version": 3, "accuracy": 0.9}]
    rho, n = metric_agreement([rated(0, 900), rated(1, 950), rated(2, 1000), rated(3, 1100)], metrics)
    assert n == 4 and rho == pytest.approx(0.8)  # ranks 0 1 2 3 against 0 2 1 3: 1 - 6 * 2 / (4 * 15)
    assert metric_agreement([rated(0, 900), rated(1, 950)], metrics) is None  # too few to say
