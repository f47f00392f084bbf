"""TextArena's games through the TurnEnv adapter (envs/textarena.py): each supported game played to
its end with scripted moves, textarena's invalid-move rules (one retry, then the offender loses),
the turn limit, random legal play, and the recipe's validation."""
import re

import pytest

from envs.base import DRAW, LOSS, WIN, EnvError, RandomPlayer, env_options
from envs.lockstep import Episode
from envs.lockstep import play as play_lockstep
from envs.textarena import SUPPORTED, TextArenaEnv
from judge.verdict import Verdict


def make(game: str, seed: int = 0, **options) -> TextArenaEnv:
    env = env_options({"name": "textarena", "game": game, **options}).make()
    assert isinstance(env, TextArenaEnv)
    env.reset(seed)
    return env


def play(env: TextArenaEnv, moves: list[str]) -> list[tuple[int, bool]]:
    """Play `moves` in order; each step's mover (checked against textarena's own) and its validity."""
    record = []
    for move in moves:
        assert not env.done, f"the game ended before {move!r}"
        assert env.turn == env.game.state.current_player_id
        text = env.observation(env.turn)
        assert isinstance(text, str) and text.strip()
        record.append((env.turn, env.step(move)))
    return record


def alternating(first: int, n: int) -> list[tuple[int, bool]]:
    return [((first + i) % 2, True) for i in range(n)]


def test_tictactoe_win_and_draw() -> None:
    env = make("TicTacToe-v0")
    assert env.turn == 0 and env.legal_actions() == [f"[{i}]" for i in range(9)]
    assert play(env, ["[0]", "[3]", "[1]", "[4]", "[2]"]) == alternating(0, 5)
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason == "Player 0 has won!"
    with pytest.raises(EnvError, match="over"):
        env.step("[5]")
    env.reset(1)
    assert not env.done and env.legal_actions() == [f"[{i}]" for i in range(9)]
    assert play(env, ["[0]", "[1]", "[2]", "[4]", "[3]", "[5]", "[7]", "[6]", "[8]"]) == alternating(0, 9)
    assert env.done and env.rewards() == (DRAW, DRAW) and env.reason == "The game is a draw!"


def test_tictactoe_legal_actions_are_the_observations_available_moves() -> None:
    env = make("TicTacToe-v0")
    play(env, ["[4]", "[0]"])
    offered = re.findall(r"Available Moves: (.*)", env.observation(env.turn))[-1]
    assert env.legal_actions() == re.findall(r"'(\[\d\])'", offered) == ["[1]", "[2]", "[3]", "[5]", "[6]", "[7]", "[8]"]


def test_an_invalid_move_may_be_retried_once_then_loses() -> None:
    env = make("TicTacToe-v0")
    assert play(env, ["[4]", "[4]"]) == [(0, True), (1, False)]  # occupied: player 1 may retry
    assert not env.done and env.turn == 1 and "invalid move" in env.observation(1)
    assert play(env, ["[0]", "hello", "[9]"]) == [(1, True), (0, False), (0, False)]  # a second in a row loses
    assert env.done and env.rewards() == (LOSS, WIN) and env.reason == "9. Must be between 0 and 8."
    assert env.legal_actions() == []


def test_connect_four_columns_retry_and_a_vertical_four() -> None:
    env = make("ConnectFour-v0")
    assert env.legal_actions() == [f"[col {c}]" for c in range(7)]
    assert play(env, ["[col 9]"]) == [(0, False)] and env.turn == 0 and not env.done
    assert play(env, ["[col 0]", "[col 1]"] * 3 + ["[col 0]"]) == alternating(0, 7)
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason == "Player 0 wins by connecting four!"
    env = make("ConnectFour-v0")
    play(env, ["[col 0]", "[col 0]"] * 3)  # column 0 full: no longer offered
    assert env.legal_actions() == [f"[col {c}]" for c in range(1, 7)]
    assert play(env, ["[col 0]", "[col 0]"]) == [(0, False), (0, False)]
    assert env.done and env.rewards() == (LOSS, WIN) and "Column 0 is full" in env.reason


def test_kuhn_poker_starts_with_player_1_and_folds_decide() -> None:
    env = make("KuhnPoker-v0")
    assert env.turn == 1 and env.legal_actions() == ["[check]", "[bet]"]
    assert play(env, ["[call]"]) == [(1, False)] and not env.done  # no bet to call: retry
    assert play(env, ["[bet]"]) == [(1, True)] and env.legal_actions() == ["[fold]", "[call]"]
    # round 1: 1 bets, 0 folds; round 2 (0 starts): 0 bets, 1 folds; round 3 (1 starts): 1 bets, 0 folds
    assert play(env, ["[fold]", "[bet]", "[fold]", "[bet]", "[fold]"]) == [(0, True), (0, True), (1, True), (1, True), (0, True)]
    assert env.done and env.rewards() == (LOSS, WIN) and env.reason.startswith("Player 1 won by having more chips")


def test_kuhn_poker_two_invalid_moves_lose() -> None:
    env = make("KuhnPoker-v0", seed=3)
    assert play(env, ["[call]", "[raise]"]) == [(1, False), (1, False)]
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason


def test_nim_takes_the_last_object() -> None:
    env = make("Nim-v0")
    assert len(env.legal_actions()) == 3 + 4 + 5 and "[2 5]" in env.legal_actions()
    assert play(env, ["[0 9]"]) == [(0, False)]  # more than the pile holds: retry
    assert play(env, ["[0 3]", "[1 4]", "[2 5]"]) == alternating(0, 3)
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason == "Player 0 took the last object(s)!"


def test_liars_dice_calls_until_a_player_has_no_dice() -> None:
    env = make("LiarsDice-v0")
    assert env.legal_actions() == ["[Bid: 1, 1]"]  # no call before a bid
    assert play(env, ["[Bid: 11, 6]", "[Call]"] * 5) == alternating(0, 10)  # eleven sixes among ten dice: a lie each time
    assert env.done and env.rewards() == (LOSS, WIN) and env.reason == "Player 1 wins! Final ranking: [0, 1]"


def test_liars_dice_a_repeated_call_without_a_bid_eliminates() -> None:
    env = make("LiarsDice-v0")
    assert play(env, ["[Call]", "[Call]"]) == [(0, False), (0, False)]
    assert env.done and env.rewards() == (LOSS, WIN)


def test_simple_negotiation_a_trade_wins_and_offers_need_the_goods() -> None:
    env = make("SimpleNegotiation-v0")
    assert "[Deny]" in env.legal_actions()
    assert play(env, ["[Offer: 1000 Ore -> 1 Wheat]"]) == [(0, False)] and not env.done  # holds no 1000 Ore: retry
    assert play(env, ["[Offer: 1 Wheat -> 1 Ore]"]) == [(0, True)]
    assert "[Accept]" in env.legal_actions()
    # Ore is worth 32-40 to each, Wheat 5-6: the trade gains player 0 value and loses player 1 some
    assert play(env, ["[Accept]"] + ["[Deny]"] * 9) == alternating(1, 10)  # textarena's own limit: eleven valid moves
    assert env.done and env.rewards() == (WIN, LOSS) and env.reason == "Player 0 won by having a larger gain in inventory value."


def test_simple_negotiation_no_trade_is_a_draw_and_two_bad_offers_lose() -> None:
    env = make("SimpleNegotiation-v0", seed=2)
    assert play(env, ["[Deny]"] * 11) == alternating(0, 11)
    assert env.done and env.rewards() == (DRAW, DRAW) and "Draw" in env.reason
    env = make("SimpleNegotiation-v0", seed=2)
    assert play(env, ["[Deny]", "[Offer: 1 Ore -> zzz]", "[Offer: nothing]"]) == [(0, True), (1, False), (1, False)]
    assert env.done and env.rewards() == (WIN, LOSS) and "incorrect format" in env.reason


def test_iterated_prisoners_dilemma_the_defector_wins() -> None:
    env = make("IteratedPrisonersDilemma-v0")
    assert env.legal_actions() == ["[Cooperate]", "[Defect]"]
    # ten rounds of talk (one turn each) then a decision each; anything but [Defect] cooperates, so no move is invalid
    assert play(env, ["hello, [Cooperate]?", "[Defect]"] * 20) == alternating(0, 40)
    assert env.done and env.rewards() == (LOSS, WIN) and env.reason == "Player 1 wins 50 - 0."


@pytest.mark.parametrize("right", [True, False])
def test_truth_and_deception_the_guess_decides(right: bool) -> None:
    env = make("TruthAndDeception-v0", seed=4)
    facts = env.game.state.game_state
    guess = "[Fact 1]" if facts["fact1"]["is_correct"] == right else "[Fact 2]"
    assert play(env, ["trust me", "why?", "because", "hm", "fact 2 is true", guess]) == alternating(0, 6)
    assert env.done and env.rewards() == ((LOSS, WIN) if right else (WIN, LOSS))
    assert env.reason == f"Player 1 guessed {'correct' if right else 'the wrong'} fact."


def test_truth_and_deception_a_guess_out_of_format_may_be_retried_once() -> None:
    env = make("TruthAndDeception-v0")
    assert play(env, ["a", "b", "c", "d", "e", "I think the first", "no idea"]) == alternating(0, 5) + [(1, False), (1, False)]
    assert env.done and env.rewards() == (WIN, LOSS) and "correct format" in env.reason


def test_the_turn_limit_ends_in_a_draw() -> None:
    env = make("TicTacToe-v0", max_turns=4)
    assert play(env, ["[0]", "[4]", "[4]", "[1]"]) == [(0, True), (1, True), (0, False), (0, True)]  # a retry counts
    assert env.done and env.reason == "turn limit" and env.rewards() == (DRAW, DRAW)
    with pytest.raises(EnvError, match="over"):
        env.step("[2]")


def test_only_the_player_to_move_observes() -> None:
    env = make("KuhnPoker-v0")
    assert "Your card is" in env.observation(1) and env.expert() is None
    with pytest.raises(EnvError, match="player 1 is to move"):
        env.observation(0)


@pytest.mark.parametrize("game", sorted(SUPPORTED))
def test_random_legal_play_always_finishes(game: str) -> None:
    for seed in range(3):
        env = make(game, seed=seed, max_turns=60)
        player = RandomPlayer(seed)
        while not env.done:
            legal = env.legal_actions()
            assert legal and all(isinstance(move, str) for move in legal)
            assert env.turn == env.game.state.current_player_id and env.observation(env.turn)
            assert env.step(player.act(env)), (game, seed)  # a legal move is never invalid
            if env.awaiting():  # a debate: its judges decide
                env.settle(Verdict("tie", 0.5, 0.5, "scripted"))
        assert env.reason and env.rewards() in ((WIN, LOSS), (LOSS, WIN), (DRAW, DRAW))


def test_the_recipe_names_a_supported_offline_game() -> None:
    options = env_options({"name": "textarena", "game": "ConnectFour-v0"})
    assert not options.has_expert and env_options({"name": "tictactoe"}).has_expert
    assert env_options({"name": "textarena"}).game == "TicTacToe-v0"
    with pytest.raises(EnvError, match=r"'Chess-v0' is not supported; supported: .*KuhnPoker-v0.*TicTacToe-v0"):
        env_options({"name": "textarena", "game": "Chess-v0"})
    assert env_options({"name": "textarena", "game": "Debate-v0"}).judged and not options.judged
    with pytest.raises(EnvError, match="Debate-v0 ends after 6 arguments: max_turns 4 would stop every debate"):
        env_options({"name": "textarena", "game": "Debate-v0", "max_turns": 4})
    with pytest.raises(EnvError, match="players"):
        env_options({"name": "textarena", "players": 3})
    assert {"TicTacToe-v0", "KuhnPoker-v0", "SimpleNegotiation-v0", "ConnectFour-v0", "Nim-v0", "LiarsDice-v0",
            "IteratedPrisonersDilemma-v0", "TruthAndDeception-v0"} <= set(SUPPORTED)


@pytest.mark.parametrize("winner", ["a", "b", "tie"])
def test_a_debate_waits_for_its_jury_and_the_verdict_decides(winner: str) -> None:
    """Debate-v0 with our judges as the jury: after the sixth argument the episode holds the
    topic and each side's arguments (the Affirmative as side a); the verdict ends it."""
    env = make("Debate-v0", seed=3)
    sides = env.game.state.game_state["sides"]
    assert play(env, [f"argument {i}" for i in range(6)]) == alternating(0, 6)
    assert not env.done
    problem, affirmative, negative = env.awaiting()
    assert env.game.state.game_state["topic"] in problem.prompt
    aff = next(p for p, side in sides.items() if side == "Affirmative")
    assert affirmative.splitlines() == [f"argument {i}" for i in range(aff, 6, 2)]
    assert negative.splitlines() == [f"argument {i}" for i in range(1 - aff, 6, 2)]
    with pytest.raises(EnvError, match="waits on its judges"):
        env.step("one more")
    env.settle(Verdict(winner, 0.0, 0.0, "scripted"))
    assert env.done and env.awaiting() is None
    if winner == "tie":
        assert env.rewards() == (DRAW, DRAW)
    else:
        won = aff if winner == "a" else 1 - aff
        assert env.rewards()[won] == WIN and env.rewards()[1 - won] == LOSS
        assert env.reason == f"Player {won} wins by gaining more support."


def test_lockstep_judges_every_waiting_debate_in_one_call() -> None:
    episodes = []
    for seed in range(4):
        env = make("Debate-v0", seed=seed)
        episodes.append(Episode(f"e{seed}", seed, ("me", "op"), (0, 0), env))
    calls = []

    def jury(problems, a, b):
        calls.append(len(problems))
        return [Verdict("a", 1.0, 0.0, "scripted")] * len(problems)

    def mover(envs, prompts, seeds):
        return lambda: ["I argue my side."] * len(envs)

    play_lockstep(episodes, {"me": mover, "op": mover}, lambda o: o, lambda n: [0] * n, jury)
    assert calls == [4] and all(e.env.done and len(e.turns) == 6 for e in episodes)
    for e in episodes:  # the Affirmative won each
        aff = next(p for p, side in e.env.game.state.game_state["sides"].items() if side == "Affirmative")
        assert e.env.rewards()[aff] == WIN
    unjudged = [Episode("x", 0, ("me", "op"), (0, 0), make("Debate-v0"))]
    with pytest.raises(EnvError, match="decided by judges and none were given"):
        play_lockstep(unjudged, {"me": mover, "op": mover}, lambda o: o, lambda n: [0] * n)
