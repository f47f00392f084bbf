"""The judge pool on real Ray: batches across judges, a raising batch retried then marked, a
stuck judge abandoned at its deadline and replaced, and the pool working on afterwards."""
import time

import pytest
import ray

from judge.actor import judge_actor
from judge.pool import JudgeFailure, JudgePool
from judge.registry import JudgeSpec
from prompts.example import Example


def _pool(spec: JudgeSpec, name: str, **kwargs) -> JudgePool:
    return JudgePool(lambda slot, gen: judge_actor(f"test-pool-{name}-{slot}-{gen}", spec), **kwargs)


def test_a_failing_batch_is_retried_then_marked_and_the_rest_judged(ray_cluster) -> None:
    pool = _pool(JudgeSpec("numeric"), "numeric", size=2, batch_size=2, retries=1)
    try:
        problems = [Example("?", "4"), Example("?", "5"), Example("?", "five"), Example("?", "6")]  # "five" makes the verifier raise
        verdicts = pool.judge(problems, ray.put(["4", "x", "5", "6"]), ["3", "5", "5", "6"])
        assert [v.winner for v in verdicts[:2]] == ["a", "b"]
        for v in verdicts[2:]:
            assert v.winner == "tie" and v.reason.startswith("judge error after 2 tries:") and "not a number" in v.reason
        assert len(pool.errors) == 2  # the first try and the retry on the other judge
        assert pool.score(problems[:2], ["4", "5"]) == [1.0, 1.0]
    finally:
        pool.stop()


def test_a_stuck_judge_is_abandoned_replaced_and_the_pool_goes_on(ray_cluster) -> None:
    spec = JudgeSpec("code", {"wall_seconds": 120, "cpu_seconds": 30})
    pool = _pool(spec, "code", size=1, batch_size=1, timeout_s=4.0, retries=0)
    try:
        slow = "import time\ntime.sleep(90)\n"
        problems = [Example("?", tests="assert True"), Example("?", tests="assert True")]
        start = time.monotonic()
        verdicts = pool.judge(problems, ["x = 1", slow], ["x = 2", "x = 3"])
        assert time.monotonic() - start < 45  # abandoned at its deadline, not waited out (90 s); slack for a loaded CI box
        assert verdicts[0].winner == "tie" and verdicts[0].reason.startswith("a: passed")  # judged
        assert verdicts[1].reason == "judge error after 1 tries: timed out after 4s"
        assert pool.generation == [1]  # the stuck judge was replaced
        [v] = pool.judge(problems[:1], ["x = 1"], ["raise SystemExit(1)"])
        assert v.winner == "a"
    finally:
        pool.stop()


def test_a_killed_judge_is_replaced_and_judges_that_keep_failing_stop_the_run(ray_cluster) -> None:
    pool = _pool(JudgeSpec("numeric"), "killed", size=1, batch_size=2, retries=1, max_error_share=0.5)
    try:
        ray.kill(pool.actors[0])  # SIGKILL of its process, as a crash would
        assert pool.name() == "numeric"  # known without asking the dead judge
        problems = [Example("?", "4"), Example("?", "5")]
        verdicts = pool.judge(problems, ["4", "x"], ["3", "5"])
        assert [v.winner for v in verdicts] == ["a", "b"]  # the retry went to a fresh judge in its slot
        assert pool.generation == [1] and "ActorDiedError" in pool.errors[0]
        always = [Example("?", "five")] * 4  # the verifier raises on every one: all judge errors
        with pytest.raises(JudgeFailure, match=r"4 of 4 games could not be judged.*judge.max_error_share is 0.5"):
            pool.judge(always, ["1"] * 4, ["2"] * 4)
    finally:
        pool.stop()


def test_a_judge_that_dies_while_starting_is_started_again(ray_cluster) -> None:
    """A restarted run's judge killed before it answered once (as the faults test can): started
    again in its slot, or, after `retries` such deaths, a JudgeFailure that says so."""
    def dying(times: int):
        def start(slot: int, generation: int):
            actor = judge_actor(f"test-pool-dying-{times}-{slot}-{generation}", JudgeSpec("numeric"))
            if generation < times:
                ray.kill(actor)
            return actor
        return start

    pool = JudgePool(dying(1), retries=1)
    try:
        assert pool.generation == [1] and pool.name() == "numeric" and "died while starting" in pool.errors[0]
        [v] = pool.judge([Example("?", "4")], ["4"], ["3"])
        assert v.winner == "a"
    finally:
        pool.stop()
    with pytest.raises(JudgeFailure, match=r"judge 0 died each of the 2 times it started \(judge.retries is 1\)"):
        JudgePool(dying(2), retries=1)
    starts = []  # a judge whose own start raises is not started again: the recipe is wrong, and its error says how

    def wrong(slot: int, generation: int):
        starts.append(generation)
        return judge_actor(f"test-pool-wrong-{slot}-{generation}", JudgeSpec("no_such_verifier"))

    with pytest.raises(ray.exceptions.RayActorError, match="no_such_verifier") as raised:
        JudgePool(wrong, retries=3)
    assert raised.value.actor_init_failed and starts == [0]
