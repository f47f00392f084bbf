"""Learning from multi-turn episodes: the records, episode pairs whose masks cover one player's
actions only, REINFORCE's role baseline and loss against hand-computed values, both objectives
in the learner, and a run of the multi_turn game through `selfplay run` on real actors."""
import math
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import read_metrics

from cluster.config import ConfigError, parse_config
from envs.base import env_options
from envs.lockstep import Episode, play
from games.multi_turn import MultiTurn, as_records
from learner.learner import DPOSettings, Learner
from learner.sequences import encode_pairs, token_logps
from learner.tiny_model import build_tokenizer
from learner.trajectories import RoleBaseline, gather_actions, kl_to_reference, reinforce_loss


def scripted_episodes() -> list[Episode]:
    """Nim from 5 stones, `me` against `op`, each taking the same number every move: seed 1 twice
    with `me` first (e0: 5-4-3-2-1-0, a win; e1: 5-3-1 and then 2, an invalid move, a loss),
    seed 1 with `me` second (e2: 5-3-0, a win), seed 2 with `me` first (e3: a win)."""
    options = env_options({"name": "nim", "low": 5, "high": 5})
    scripts = {"e0": ("1", "1"), "e1": ("2", "2"), "e2": ("3", "2"), "e3": ("1", "1")}  # (me, op): takes per move
    seats = {"e0": ("me", "op"), "e1": ("me", "op"), "e2": ("op", "me"), "e3": ("me", "op")}
    seeds = {"e0": 1, "e1": 1, "e2": 1, "e3": 2}
    episodes = []
    for eid in scripts:
        env = options.make()
        env.reset(seeds[eid])
        episodes.append(Episode(eid, seeds[eid], seats[eid], (3, 1), env))

    def mover(name: str):
        def ask(envs, prompts, seeds_):
            ids = [next(e.id for e in episodes if e.env is env) for env in envs]
            return lambda: [scripts[i][0 if name == "me" else 1] for i in ids]
        return ask

    play(episodes, {"me": mover("me"), "op": mover("op")}, lambda o: f"({o})", lambda n: [0] * n)
    return episodes


def test_episode_and_turn_records_agree_with_the_games_played() -> None:
    episodes = scripted_episodes()
    winners = {e.id: e.env.rewards() for e in episodes}
    rows, turns, moves = as_records(7, "nim", episodes)
    recorded = MultiTurn.record(7, "me", 3, rows, turns, moves, "dpo")
    episode_table, turn_table = recorded.tables["episodes"], recorded.tables["turns"]
    assert episode_table.num_rows == 4 and turn_table.num_rows == sum(len(e.turns) for e in episodes)
    by_id = {r["episode_id"]: r for r in episode_table.to_pylist()}
    for e in episodes:
        r = by_id[e.id]
        assert (r["reward_0"], r["reward_1"]) == winners[e.id] and r["turns"] == len(e.turns)
        assert (r["player_0"], r["player_1"]) == e.players and r["round"] == 7 and r["reason"] == e.env.reason
    assert Counter(t["episode_id"] for t in turn_table.to_pylist()) == {e.id: len(e.turns) for e in episodes}
    me_scores = [(1 + (r["reward_0"] if r["player_0"] == "me" else r["reward_1"])) / 2 for r in by_id.values()]
    assert sorted(g.score_a for g in recorded.results) == sorted(me_scores) == [0.0, 1.0, 1.0, 1.0]
    assert {(g.policy_a, g.policy_b) for g in recorded.results} == {("me", "op")}
    assert recorded.fields["episodes"] == 4 and recorded.fields["invalid_moves"] == 1


def test_episode_pairs_take_one_seed_and_seat_and_cover_one_players_actions_only() -> None:
    episodes = scripted_episodes()
    rows, turns, moves = as_records(1, "nim", episodes)
    outcome = {r["episode_id"]: r["winner"] for r in rows}
    pairs = MultiTurn.record(1, "me", 3, rows, turns, moves, "dpo").pairs.to_pylist()
    for p in pairs:
        assert outcome[p["chosen_episode"]] == p["seat"] != outcome[p["rejected_episode"]]
        chosen = next(e for e in episodes if e.id == p["chosen_episode"])
        assert p["chosen_actions"] == [t.action for t in chosen.turns if t.player == "me"]
        assert p["chosen_prompts"] == [f"({t.observation})" for t in chosen.turns if t.player == "me"]
    # only seed 1 with `me` first has both a won and a lost episode
    assert [(p["seed"], p["seat"]) for p in pairs] == [(1, 0)]

    tokenizer = build_tokenizer()
    pair = pairs[0]
    prompts = pair["chosen_prompts"] + pair["rejected_prompts"]
    actions = pair["chosen_actions"] + pair["rejected_actions"]
    owners = [0] * len(pair["chosen_actions"]) + [1] * len(pair["rejected_actions"])
    batch = encode_pairs(tokenizer, prompts, actions)
    ids = batch["input_ids"][:, 1:].float()  # "log-probabilities" that are the token ids, to see what is gathered
    rows_, keep = gather_actions(ids, batch["completion_mask"][:, 1:], owners, 2)
    eos = tokenizer.eos_token_id
    for side, acts in enumerate((pair["chosen_actions"], pair["rejected_actions"])):
        expected = [i for a in acts for i in tokenizer(a, add_special_tokens=False)["input_ids"] + [eos]]
        assert rows_[side][keep[side].bool()].long().tolist() == expected  # every action token and its end, nothing else


def test_the_role_baseline_is_read_before_it_is_updated() -> None:
    baseline = RoleBaseline(0.95)
    assert baseline.advantage("nim", 0, 1.0) == 1.0  # b was 0; now 0.05
    assert math.isclose(baseline.advantage("nim", 0, -1.0), -1.05)  # b was 0.05; now 0.0475 - 0.05 = -0.0025
    assert math.isclose(baseline.advantage("nim", 0, 1.0), 1.0025)
    assert baseline.advantage("nim", 1, 1.0) == 1.0  # each seat has its own
    assert math.isclose(baseline.values["nim/0"], 0.95 * -0.0025 + 0.05)
    with pytest.raises(ValueError, match="decay"):
        RoleBaseline(1.0)


def test_reinforce_loss_by_hand() -> None:
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss = reinforce_loss(logps, mask, torch.tensor([2.0, -1.0]))
    assert math.isclose(loss.item(), -(2 * -3.0 + -1 * -0.5) / 2)  # 2.75
    ref = torch.tensor([[-1.0, -1.0], [-0.5, 0.0]])
    assert math.isclose(kl_to_reference(logps, ref, mask).item(), (math.e - 2) / 3, rel_tol=1e-6)  # r = 0, 1, 0 on the 3 tokens
    assert kl_to_reference(logps, logps, mask).item() == 0.0


def move_logp(learner: Learner, prompts: list[str], actions: list[str]) -> float:
    with torch.no_grad():
        per_token, _ = token_logps(learner.policy, encode_pairs(learner.tokenizer, prompts, actions))
    return per_token.sum().item()


def test_both_objectives_move_the_policy_the_right_way(tiny_model: Path) -> None:
    settings = DPOSettings(batch_size=8, epochs=3, learning_rate=5e-3, ref_refresh_every=0, nll_weight=0.0)
    episodes = scripted_episodes()
    rows, turns, moves = as_records(1, "nim", episodes)
    pairs = MultiTurn.record(1, "me", 3, rows, turns, moves, "dpo").pairs
    learner = Learner(tiny_model, settings)
    p = pairs.to_pylist()[0]
    before = move_logp(learner, p["chosen_prompts"], p["chosen_actions"]) - move_logp(learner, p["rejected_prompts"], p["rejected_actions"])
    stats = learner.train(pairs)
    after = move_logp(learner, p["chosen_prompts"], p["chosen_actions"]) - move_logp(learner, p["rejected_prompts"], p["rejected_actions"])
    assert stats["pairs"] == 1 and learner.version == 1 and after > before

    samples = MultiTurn.record(1, "me", 3, rows, turns, moves, "reinforce").pairs
    assert samples.num_rows == sum(1 for t in turns if t["player"] == "me")
    learner = Learner(tiny_model, settings)
    won = [s for s in samples.to_pylist() if s["reward"] > 0][0]
    before = move_logp(learner, [won["prompt"]], [won["action"]])
    stats = learner.train(samples)
    assert learner.version == 1 and math.isfinite(stats["pg_loss"])
    assert move_logp(learner, [won["prompt"]], [won["action"]]) > before
    assert set(learner.baseline.values) == {"nim/0", "nim/1"}  # one baseline per seat, kept in the learner's state


@pytest.mark.parametrize("objective", ["dpo", "reinforce"])
def test_micro_batched_game_steps_equal_the_whole_batch_step(tiny_model: Path, objective: str) -> None:
    """Episode pairs and REINFORCE moves under a token budget: the accumulated gradients are the whole batch's."""
    rows, turns, moves = as_records(1, "nim", scripted_episodes())
    table = MultiTurn.record(1, "me", 3, rows, turns, moves, objective).pairs
    settings = dict(batch_size=64, epochs=1, learning_rate=1e-2, max_grad_norm=1e6, ref_refresh_every=0, kl_weight=0.5)
    whole, split = Learner(tiny_model, DPOSettings(**settings)), Learner(tiny_model, DPOSettings(**settings, micro_batch_tokens=24))
    if objective == "dpo":  # one pair: a second, mirrored, so the budget has pairs to split
        table = pa.concat_tables([table, table])
    forward, calls = split._moves_logps, []
    split._moves_logps = lambda prompts, actions: (calls.append(len(prompts)), forward(prompts, actions))[1]
    a, b = whole.train(table), split.train(table)
    assert len(calls) > 1 and a["loss"] == pytest.approx(b["loss"], rel=1e-5)  # split, and the same step
    for (name, x), y in zip(whole.policy.named_parameters(), split.policy.parameters()):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_multi_turn_needs_a_game_task() -> None:
    with pytest.raises(ConfigError, match="set task.kind: game"):
        parse_config({"self_play": {"modes": ["multi_turn"]}})


def nim_run(run_dir: Path, **sections: dict) -> dict:
    """A Nim recipe on the tiny model for the integration tests; `sections` update its sections."""
    recipe = {
        "run_dir": str(run_dir),
        "task": {"kind": "game", "env": {"name": "nim", "low": 5, "high": 12}, "held_out_size": 16},
        "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128}},
        "sft": {"steps": 60, "stop_at_accuracy": None},
        "generator": {"max_new_tokens": 3, "snapshot_replicas": 0},  # the current policy's engine answers for the snapshots
        "self_play": {"modes": ["multi_turn"], "iterations": 2},
        "multi_turn": {"seeds": 6, "episodes_per_seed": 2, "eval_episodes": 8},
        "eval": {"diversity_prompts": 4, "diversity_samples": 2, "min_distinct_2": 0.0},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


def test_a_nim_run_through_selfplay_run(ray_cluster, tmp_path: Path) -> None:
    from cluster.run import run_self_play

    run_dir = tmp_path / "run"
    run_self_play(parse_config(nim_run(run_dir)), show_progress=False)
    first, *rows = read_metrics(run_dir)
    assert 0 <= first["win_rate_vs_random"] <= 1 and len(first["win_rate_vs_expert_ci"]) == 2
    episodes = pq.read_table(run_dir / "episodes").to_pylist()
    turns = pq.read_table(run_dir / "turns").to_pylist()
    assert len(episodes) == sum(r["episodes"] for r in rows) == 2 * 6 * 2 * 2
    assert Counter(t["episode_id"] for t in turns) == {e["episode_id"]: e["turns"] for e in episodes}
    seats = Counter((e["round"], e["seed"], e["player_0"] == "current") for e in episodes)
    assert set(seats.values()) == {2} and len(seats) == 2 * 6 * 2  # every seed played twice in each seat
    assert all(r["pairs"] == pq.read_table(run_dir / "pairs" / f"round-{r['iteration']:05d}-multi_turn.parquet").num_rows for r in rows)
    league = parse_league(run_dir)
    assert "v0" in league and all("win_rate_vs_random_ci" in r for r in rows)
    from cluster.cli import main

    assert main(["report", str(run_dir)]) == 0  # a game's run draws the win rates against the fixed opponents
    assert '<figure id="fixed_opponents">' in (run_dir / "report" / "index.html").read_text()
    from browser import drawn_figures

    assert "fixed_opponents" in drawn_figures(run_dir / "report" / "index.html", "report-nim")  # in headless Chromium


def test_exploiters_play_the_game_and_the_league_rates_each_seat(ray_cluster, tmp_path: Path) -> None:
    """League roles on Nim: the main exploiter plays multi-turn episodes too (not head-to-head
    answers), and the league keeps every episode's result by seat."""
    from cluster.run import run_self_play
    from league.league import League

    run_dir = tmp_path / "run"
    recipe = nim_run(run_dir, sft={"steps": 20}, self_play={"iterations": 1}, multi_turn={"seeds": 4, "episodes_per_seed": 1, "eval_episodes": 4},
                     league={"matchmaking": "alphastar", "roles": {"league_exploiters": 0, "games_per_iteration": 3}})
    run_self_play(parse_config(recipe), show_progress=False)
    row = read_metrics(run_dir)[1]
    episodes = pq.read_table(run_dir / "episodes").to_pylist()
    mine = [e for e in episodes if "main_exploiter" in (e["player_0"], e["player_1"])]
    assert row["exploiters"]["main_exploiter"]["games"] == 3 * 2 == len([e for e in mine if e["episode_id"] in _exploiter_ids(run_dir)])
    assert not (run_dir / "games").exists() or not list((run_dir / "games").glob("*main_exploiter*"))
    league = League.load(run_dir / "league.json")
    seated = {name.split("@")[0] for name in league.by_seat}
    assert {"current", "main_exploiter"} <= seated and {n.split("@")[1] for n in league.by_seat} == {"first", "second"}
    assert league.first_mover_score()[1] == len(episodes)  # every episode once, self-play ones too


def _exploiter_ids(run_dir: Path) -> set[str]:
    return {e["episode_id"] for e in pq.read_table(run_dir / "episodes" / "round-00001-main_exploiter.parquet").to_pylist()}


def parse_league(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "league.json").read_text())["ratings"]


def test_a_game_without_an_expert_is_not_evaluated_against_one() -> None:
    recipe = {"task": {"kind": "game", "env": {"name": "textarena", "game": "KuhnPoker-v0"}}, "self_play": {"modes": ["multi_turn"]}}
    with pytest.raises(ConfigError, match="KuhnPoker-v0 has no expert player: set multi_turn.eval_opponents to \\[random\\]"):
        parse_config(recipe)
    assert parse_config({**recipe, "multi_turn": {"eval_opponents": ["random"]}}).task.environment().label == "KuhnPoker-v0"


def test_a_judged_game_needs_a_judge_that_weighs_arguments() -> None:
    recipe = {"task": {"kind": "game", "env": {"name": "textarena", "game": "Debate-v0"}}, "self_play": {"modes": ["multi_turn"]},
              "multi_turn": {"eval_opponents": ["random"]}}
    with pytest.raises(ConfigError, match="Debate-v0 is decided by the run's judges, and judge kind 'exact_answer' cannot"):
        parse_config(recipe)
    assert parse_config({**recipe, "judge": {"kind": "pairwise_llm", "llm": "smollm2-135m-instruct"}}).task.environment().judged


def test_a_textarena_debate_with_a_pretrained_chat_model_and_its_judges_as_jury(ray_cluster, smollm2: Path, tmp_path: Path) -> None:
    """One iteration of TextArena's Debate between SmolLM2-135M-Instruct and its snapshot, the
    run's pairwise LLM judge (SmolLM2 too) as the jury: observations go through the chat
    template, every debate ends on a verdict, REINFORCE trains the real model on every argument."""
    from cluster.run import run_self_play

    run_dir = tmp_path / "run"
    recipe = {
        "run_dir": str(run_dir),
        "model": {"path": "smollm2-135m-instruct", "max_model_len": 1024},
        "task": {"kind": "game", "env": {"name": "textarena", "game": "Debate-v0"}, "held_out_size": 8},
        "judge": {"kind": "pairwise_llm", "llm": "smollm2-135m-instruct", "llm_max_model_len": 1024, "llm_max_new_tokens": 8},
        "sft": {"steps": 0},
        "generator": {"max_new_tokens": 16, "kv_cache_bytes": 256 * 2**20},
        "self_play": {"modes": ["multi_turn"], "iterations": 1},
        "multi_turn": {"seeds": 1, "episodes_per_seed": 1, "objective": "reinforce", "eval_episodes": 2, "eval_opponents": ["random"]},
        "dpo": {"batch_size": 8, "epochs": 1, "learning_rate": 1e-5},
        "eval": {"diversity_prompts": 2, "diversity_samples": 2, "min_distinct_2": 0.0},
    }
    run_self_play(parse_config(recipe), show_progress=False)
    first, row = read_metrics(run_dir)
    episodes = pq.read_table(run_dir / "episodes").to_pylist()
    turns = pq.read_table(run_dir / "turns").to_pylist()
    moves = pq.read_table(run_dir / "pairs" / "round-00001-multi_turn.parquet").to_pylist()
    assert row["episodes"] == len(episodes) == 2 and {e["game"] for e in episodes} == {"Debate-v0"}
    assert all(e["turns"] == 6 for e in episodes) and Counter(t["episode_id"] for t in turns) == {e["episode_id"]: 6 for e in episodes}
    decided = ("wins by gaining more support", "did not favor either side")  # textarena's reasons on the jury's votes
    assert all(any(d in e["reason"] for d in decided) for e in episodes), [e["reason"] for e in episodes]
    assert row["pairs"] == len(moves) == sum(1 for t in turns if t["player"] == "current") and row["version"] == 1
    for m in moves:  # the model was asked through its chat template, the observation inside
        assert m["prompt"].startswith("<|im_start|>") and "Debate" in m["prompt"]
    assert 0 <= row["win_rate_vs_random"] <= 1 and math.isfinite(row["pg_loss"])
