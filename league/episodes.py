"""Records of multi-turn games, and what the learner takes from them.

`episodes/round-N.parquet` has one row per episode (its seed, each seat's policy and version,
turns, rewards, the winning seat, why it ended); `turns/round-N.parquet` one row per move.
From the episodes of one seed and one seat, a won episode's moves are chosen over a lost
episode's (draws give no pair): the pair holds each side's prompts and actions, and DPO sums the
log-probabilities of the actions only. For REINFORCE, every move of the agent is a sample with
its episode's reward; the learner subtracts a baseline per game and seat.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

EPISODE_SCHEMA = pa.schema([
    ("episode_id", pa.string()), ("round", pa.int32()), ("game", pa.string()), ("seed", pa.int64()),
    ("player_0", pa.string()), ("version_0", pa.int32()), ("player_1", pa.string()), ("version_1", pa.int32()),
    ("turns", pa.int32()), ("reward_0", pa.float64()), ("reward_1", pa.float64()), ("winner", pa.int8()),
    ("reason", pa.string()),
])
TURN_SCHEMA = pa.schema([
    ("episode_id", pa.string()), ("round", pa.int32()), ("turn", pa.int32()), ("seat", pa.int8()), ("player", pa.string()),
    ("observation", pa.string()), ("action", pa.string()), ("valid", pa.bool_()),
])
TRAJECTORY_PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("round", pa.int32()), ("game", pa.string()), ("seed", pa.int64()), ("seat", pa.int8()),
    ("chosen_episode", pa.string()), ("rejected_episode", pa.string()),
    ("chosen_prompts", pa.list_(pa.string())), ("chosen_actions", pa.list_(pa.string())),
    ("rejected_prompts", pa.list_(pa.string())), ("rejected_actions", pa.list_(pa.string())),
    ("margin", pa.float64()),
])
SAMPLE_SCHEMA = pa.schema([
    ("episode_id", pa.string()), ("round", pa.int32()), ("game", pa.string()), ("seat", pa.int8()),
    ("prompt", pa.string()), ("action", pa.string()), ("reward", pa.float64()),
])

Moves = tuple[list[str], list[str]]  # one seat's prompts and actions in an episode, in order


def episode_tables(episodes: list[dict[str, Any]], turns: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
    return pa.Table.from_pylist(episodes, EPISODE_SCHEMA), pa.Table.from_pylist(turns, TURN_SCHEMA)


def seat_moves(prompts: dict[str, list[tuple[int, str, str]]], episode: str, seat: int) -> Moves:
    """The prompts and actions of one seat in one episode, from (seat, prompt, action) per turn."""
    mine = [(p, a) for s, p, a in prompts[episode] if s == seat]
    return [p for p, _ in mine], [a for _, a in mine]


def trajectory_pairs(round_: int, agent: str, episodes: list[dict[str, Any]], moves: dict[str, list[tuple[int, str, str]]]) -> pa.Table:
    """For each seed and each seat `agent` held, its won episodes' moves over its lost ones' (paired in order)."""
    won: dict[tuple[int, int], list[str]] = defaultdict(list)
    lost: dict[tuple[int, int], list[str]] = defaultdict(list)
    game = {}
    for e in episodes:
        for seat in (0, 1):
            if e[f"player_{seat}"] != agent or e["winner"] is None:
                continue
            (won if e["winner"] == seat else lost)[(e["seed"], seat)].append(e["episode_id"])
            game[e["episode_id"]] = e["game"]
    rows: list[dict[str, Any]] = []
    for (seed, seat), wins in won.items():
        for w, lo in zip(wins, lost.get((seed, seat), [])):
            (cp, ca), (rp, ra) = seat_moves(moves, w, seat), seat_moves(moves, lo, seat)
            rows.append({
                "pair_id": f"r{round_:05d}-ep{len(rows):06d}", "round": round_, "game": game[w], "seed": seed, "seat": seat,
                "chosen_episode": w, "rejected_episode": lo, "chosen_prompts": cp, "chosen_actions": ca,
                "rejected_prompts": rp, "rejected_actions": ra, "margin": 2.0,
            })
    return pa.Table.from_pylist(rows, TRAJECTORY_PAIR_SCHEMA)


def reinforce_samples(round_: int, agent: str, episodes: list[dict[str, Any]], moves: dict[str, list[tuple[int, str, str]]]) -> pa.Table:
    """Every move `agent` made, with its episode's reward for its seat, episode by episode."""
    rows: list[dict[str, Any]] = []
    for e in episodes:
        for seat in (0, 1):
            if e[f"player_{seat}"] != agent:
                continue
            for prompt, action in zip(*seat_moves(moves, e["episode_id"], seat)):
                rows.append({"episode_id": e["episode_id"], "round": round_, "game": e["game"], "seat": seat,
                             "prompt": prompt, "action": action, "reward": e[f"reward_{seat}"]})
    return pa.Table.from_pylist(rows, SAMPLE_SCHEMA)
