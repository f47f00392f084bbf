"""Turn-based environments played to the end with scripted moves, invalid moves included, and
many episodes in lockstep with scripted players."""
import pytest

from envs.base import DRAW, LOSS, WIN, EnvError, ExpertPlayer, RandomPlayer, env_options, environments, outcome
from envs.lockstep import Episode, play


def nim(**options):
    env = env_options({"name": "nim", **options}).make()
    return env


def test_nim_one_heap_to_the_last_stone() -> None:
    env = nim(low=7, high=7)
    env.reset(0)
    assert env.observation(0) == "N7>" and env.turn == 0 and sorted(env.legal_actions()) == ["1", "2", "3"]
    for action, turn in (("3", 0), ("3", 1)):
        assert env.turn == turn and env.step(action)
    assert env.observation(0) == "N1>" and env.legal_actions() == ["1"]
    assert env.step(" 1 ") and env.done  # whitespace around an action is no fault
    assert env.rewards() == (WIN, LOSS) and env.reason == "player 0 took the last stone"
    with pytest.raises(EnvError, match="over"):
        env.step("1")


@pytest.mark.parametrize("bad", ["4", "0", "x", "", "12"])
def test_an_invalid_nim_move_loses_at_once(bad: str) -> None:
    env = nim(low=9, high=9)
    env.reset(3)
    assert env.step("1") and env.turn == 1
    assert not env.step(bad)
    assert env.done and env.rewards() == (WIN, LOSS) and "invalid move" in env.reason and "player 1" in env.reason


def test_nim_several_heaps_and_the_turn_limit() -> None:
    env = nim(heaps=3, low=1, high=3, max_turns=2)
    env.reset(5)
    heaps = env.stones.copy()
    assert env.observation(1) == "N" + " ".join(map(str, heaps)) + ">"
    assert env.step(f"1{heaps[0]}") and env.stones[0] == 0
    assert not env.done and env.step(f"2{heaps[1]}")
    assert env.done and env.reason == "turn limit" and env.rewards() == (DRAW, DRAW)
    env.reset(5)
    assert not env.step("41")  # no fourth heap


def test_tictactoe_win_draw_and_an_occupied_cell() -> None:
    env = env_options({"name": "tictactoe"}).make()
    env.reset(0)
    assert env.observation(0) == "T.........x>"
    for cell in "14253":  # x: 1, 2, 3; o: 4, 5
        assert env.step(cell)
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason == "player 0 made three in a row"
    env.reset(0)
    for cell in "123546879":  # x o x / x o o / o x x: a full board, no line
        assert env.step(cell)
    assert env.done and env.rewards() == (DRAW, DRAW) and env.reason == "board full"
    env.reset(0)
    assert env.step("5") and env.observation(1) == "T....x....o>"
    assert not env.step("5") and env.rewards() == (WIN, LOSS)


def test_the_experts_never_lose_to_random_play() -> None:
    for spec in ({"name": "tictactoe"},):  # the empty board: a draw with perfect play, so the expert never loses
        options = env_options(spec)
        for seed in range(30):
            for expert_seat in (0, 1):
                assert outcome(expert_against_random(options, seed, expert_seat), expert_seat) >= 0.5, (spec, seed)


def test_the_nim_expert_wins_every_start_that_is_won_for_its_seat() -> None:
    options = env_options({"name": "nim", "heaps": 2, "low": 1, "high": 6})
    for seed in range(40):
        env = options.make()
        env.reset(seed)
        first_wins = (env.stones[0] % 4) ^ (env.stones[1] % 4) != 0  # Sprague-Grundy values, max_take 3
        seat = 0 if first_wins else 1
        assert expert_against_random(options, seed, seat)[seat] == WIN, seed


def expert_against_random(options, seed: int, expert_seat: int) -> tuple[float, float]:
    env = options.make()
    env.reset(seed)
    random = RandomPlayer(seed)
    while not env.done:
        env.step(ExpertPlayer().act(env) if env.turn == expert_seat else random.act(env))
    return env.rewards()


def test_every_environment_is_registered_and_unknown_ones_are_refused() -> None:
    assert {"nim", "tictactoe", "textarena"} <= set(environments())
    with pytest.raises(EnvError, match="unknown environment .chess.; known: nim, taboo, textarena, tictactoe"):
        env_options({"name": "chess"})
    with pytest.raises(EnvError, match="env 'nim': heapz: Extra inputs"):
        env_options({"name": "nim", "heapz": 2})


def test_lockstep_asks_each_player_once_per_turn_for_every_episode_it_moves_in() -> None:
    options = env_options({"name": "nim", "low": 6, "high": 6})
    calls: list[tuple[str, int]] = []

    def scripted(name: str, action: str):
        def ask(envs, prompts, seeds):
            calls.append((name, len(envs)))
            assert prompts == [f"<{e.observation(e.turn)}>" for e in envs] and len(seeds) == len(envs)
            return lambda: [action] * len(envs)
        return ask

    episodes = []
    for i, seats in enumerate([("a", "b"), ("b", "a"), ("a", "b")]):
        env = options.make()
        env.reset(i)
        episodes.append(Episode(f"e{i}", i, seats, (0, 0), env))
    play(episodes, {"a": scripted("a", "2"), "b": scripted("b", "1")}, lambda o: f"<{o}>", lambda n: list(range(n)))
    # 6 stones: a takes 2 and b takes 1 in turn; whoever opens takes the last stone on turn 4 (2+1+2+1)
    for e in episodes:
        assert [t.seat for t in e.turns] == [0, 1, 0, 1] and [t.player for t in e.turns] == [e.players[t.seat] for t in e.turns]
        assert e.env.rewards() == (LOSS, WIN) and all(t.valid for t in e.turns)
    # each turn: one call per player, covering every episode where it is that player's move
    assert calls == [("a", 2), ("b", 1), ("b", 2), ("a", 1)] * 2


def taboo(seed: int = 0, **options):
    env = env_options({"name": "taboo", **options}).make()
    env.reset(seed)
    return env


@pytest.mark.parametrize(("moves", "winner", "reason"), [
    (["Where do bakers work?", "A kitchen, I guess."], 0, "the defender said the word"),
    (["You cook in it.", "Kitchens are warm."], 0, "the defender said the word"),  # an inflection counts
    (["The room with the KITCHEN sink."], 1, "the attacker said the word"),
    (["You cook in it.", 'I know the word! It is "kitchen"!'], 1, "the defender guessed right"),
    (["You cook in it.", "I know the word! It is `oven`!"], 0, "the defender guessed wrong"),
    (["You cook in it.", "I know the word! It's a kitchen."], 1, "the defender guessed right"),  # as SPAG reads a guess
    (["You cook in it.", "I know the word! It is \"Kitchens\"!"], 1, "the defender guessed right"),
    (["I know the word! Do you?"], 1, "the attacker used the guess phrase"),
])
def test_taboo_rules_decide(moves: list[str], winner: int, reason: str) -> None:
    env = taboo()
    env.target = "kitchen"
    for i, move in enumerate(moves):
        assert not env.done and env.turn == i % 2
        assert env.step(move)
    assert env.done and env.reason == reason
    assert env.rewards()[winner] == WIN and env.rewards()[1 - winner] == LOSS


def test_taboo_counts_inflections_as_saying_the_word() -> None:
    from envs.taboo import says

    assert says("Two cities!", "city") and says("dancing", "dance") and says("APPLES", "apple") and says("danced", "dance")
    assert not says("pineapple", "apple") and not says("cityscape", "city")


def test_taboo_is_a_draw_after_five_turns_each_and_only_the_attacker_sees_the_word() -> None:
    env = taboo(seed=7)
    assert env.target in env.observation(0) and "attacker" in env.observation(0)
    env.step("Think of a place.")
    assert env.target not in env.observation(1) and "Attacker: Think of a place." in env.observation(1)
    with pytest.raises(EnvError, match="player 1 is to move"):
        env.observation(0)
    for i in range(9):
        assert not env.done
        env.step("no idea" if i % 2 == 0 else "more hints")
    assert env.done and env.reason == "no winner after the turns" and env.rewards() == (DRAW, DRAW)
    assert taboo(seed=7).target == env.target and {taboo(seed=s).target for s in range(20)} != {env.target}


def test_taboo_random_play_finishes_and_a_word_list_is_checked(tmp_path) -> None:
    for seed in range(20):
        env, player = taboo(seed=seed, turns_each=3), RandomPlayer(seed)
        while not env.done:
            assert env.step(player.act(env))
        assert env.reason
    (tmp_path / "words.txt").write_text("# two words\nOwl\nnest\n")
    assert taboo(words=str(tmp_path / "words.txt")).target in {"owl", "nest"}
    (tmp_path / "bad.txt").write_text("owl\nice cream\n")
    with pytest.raises(EnvError, match="not single words: \\['ice cream'\\]"):
        env_options({"name": "taboo", "words": str(tmp_path / "bad.txt")})
    with pytest.raises(EnvError, match="is not a file"):
        env_options({"name": "taboo", "words": str(tmp_path / "none.txt")})


def test_the_game_task_draws_positions_and_scores_legal_moves() -> None:
    """Task kind game: positions from random legal play, a legal move as the answer; in a game
    where any text is a move (Taboo, a debate, whose play stops at its judges) any answer counts."""
    import numpy as np

    from tasks.game import GameTaskOptions

    nim_task = GameTaskOptions(env={"name": "nim", "low": 5, "high": 9}, held_out_size=8).build(0)
    examples = nim_task.train(20, np.random.default_rng(0))
    assert all(e.answer in e.fields["legal"] and e.prompt.startswith("N") for e in examples)
    assert nim_task.score(examples[0], examples[0].answer) == 1.0 and nim_task.score(examples[0], "x") == 0.0
    assert {e.id for e in nim_task.held_out()}.isdisjoint(e.id for e in examples)  # odd seeds against even
    for env in ({"name": "taboo"}, {"name": "textarena", "game": "Debate-v0"}):
        task = GameTaskOptions(env=env, held_out_size=8).build(0)
        example = task.train(3, np.random.default_rng(1))[0]
        assert task.score(example, "any sentence at all") == 1.0 and task.score(example, "  ") == 0.0
