import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tree_digest

from cluster.cli import main
from judge.verdict import Verdict
from league.human_eval import HumanEvalError, export_blind_pairs, read_verdicts, verdicts_to_results
from league.league import CURRENT, League, LeagueSettings
from league.records import GAME_SCHEMA, games_table, read_tables, write_table_atomic


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    games = games_table(
        1, "head_to_head", (CURRENT, 3), [("v0", 0)] * 6, [f"p{i}" for i in range(6)],
        [f"cur{i}" for i in range(6)], [f"old{i}" for i in range(6)], [Verdict("tie", 1, 1, "")] * 6, "exact_answer", 1.0,
    )
    write_table_atomic(games, run / "games" / "round-00001.parquet")
    league = League(LeagueSettings(k_factor=32))
    league.admit(0, "/ckpt/v0")
    league.save(run / "league.json")
    return run


def test_export_is_blind_and_the_key_unblinds_it(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    n = export_blind_pairs(read_tables(run / "games", GAME_SCHEMA), tmp_path / "out", tmp_path / "key.jsonl", 6, np.random.default_rng(1))
    assert n == 6
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    text = (tmp_path / "out" / "samples.jsonl").read_text() + (tmp_path / "out" / "samples.csv").read_text()
    assert "current" not in text and "v0" not in text and "game_id" not in text
    key = {k["sample_id"]: k for k in map(json.loads, (tmp_path / "key.jsonl").read_text().splitlines())}
    firsts = set()
    for s in samples:
        k = key[s["sample_id"]]
        firsts.add(k["policy_1"])
        assert s["response_1"].startswith("cur" if k["policy_1"] == CURRENT else "old")
    assert firsts == {CURRENT, "v0"}  # sides really are shuffled


def test_cli_round_trip_folds_human_verdicts_into_ratings(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path)
    assert main(["human-export", str(run), "--n", "4"]) == 0
    rows = list(csv.DictReader(open(run / "human_eval" / "samples.csv")))
    key = {k["sample_id"]: k for k in map(json.loads, (run / "human_eval_key.jsonl").read_text().splitlines())}
    # the rater always prefers the current policy's answer
    for row in rows:
        row["verdict"] = "1" if key[row["sample_id"]]["policy_1"] == CURRENT else "2"
    with open(tmp_path / "filled.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (run / "state").mkdir()
    League.load(run / "league.json").save(run / "state" / "league.json")  # a resumable run's copy
    assert main(["human-import", str(run), str(tmp_path / "filled.csv")]) == 0
    league = League.load(run / "league.json")
    assert league.ratings[CURRENT] > 1000 > league.ratings["v0"]
    assert league.win_rate(CURRENT, "v0") == 1.0
    games = league.results[CURRENT]["v0"][1]
    assert games == len(rows) and League.load(run / "state" / "league.json").results == league.results
    # the same verdicts again are skipped, in both copies
    before = tree_digest(run)
    capsys.readouterr()
    assert main(["human-import", str(run), str(tmp_path / "filled.csv")]) == 0
    assert f"skipped {len(rows)} already folded in" in capsys.readouterr().out
    assert tree_digest(run) == before


@pytest.mark.parametrize("verdicts, named", [
    ("sample_id,prompt\ns00000,p\n", "no verdict column"),
    ("prompt,verdict\np,1\n", "no sample_id column"),
    ('{"sample_id": "s00000", "verdict": "1"}\n{"sample_id": \n', "line 2: not valid JSON"),
])
def test_human_import_refuses_broken_files_and_changes_nothing(
    tmp_path: Path, verdicts: str, named: str, capsys: pytest.CaptureFixture
) -> None:
    run = _run_dir(tmp_path)
    assert main(["human-export", str(run), "--n", "4"]) == 0
    path = tmp_path / ("v.csv" if verdicts.startswith(("sample", "prompt")) else "v.jsonl")
    path.write_text(verdicts)
    before = tree_digest(run)
    capsys.readouterr()
    assert main(["human-import", str(run), str(path)]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1, err
    (run / "human_eval_key.jsonl").write_text('{"sample_id": "s00000"\n')  # a broken key
    path = tmp_path / "ok.jsonl"
    path.write_text('{"sample_id": "s00000", "verdict": "1"}\n')
    assert main(["human-import", str(run), str(path)]) == 2
    assert "human_eval_key.jsonl" in capsys.readouterr().err
    del before["human_eval_key.jsonl"]
    assert {k: v for k, v in tree_digest(run).items() if k != "human_eval_key.jsonl"} == before


def test_league_and_export_refuse_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _run_dir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["human-export", str(run), "--n", "-5"])
    assert exit_.value.code == 2 and "-5 is not a count of one or more" in capsys.readouterr().err
    for output, named in ((tmp_path / "no" / "table.txt", "does not exist"), (tmp_path, "is a directory")):
        assert main(["league", str(run), "--output", str(output)]) == 2
        assert named in capsys.readouterr().err
    (run / "league.json").write_text('{"settings": ')
    assert main(["league", str(run)]) == 2
    err = capsys.readouterr().err
    assert "not a readable league state" in err and err.count("\n") == 1


def test_bad_verdicts_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "v.jsonl"
    bad.write_text(json.dumps({"sample_id": "s00000", "verdict": "left"}) + "\n")
    with pytest.raises(HumanEvalError, match="use 1, 2 or tie"):
        read_verdicts(bad)
    key = tmp_path / "key.jsonl"
    key.write_text(json.dumps({"sample_id": "s00001", "policy_1": "a", "policy_2": "b"}) + "\n")
    with pytest.raises(HumanEvalError, match="not in the key"):
        verdicts_to_results({"s00000": "1"}, key)


def test_the_rating_page_keeps_every_verdict_and_a_new_session_goes_on_where_the_last_stopped(tmp_path: Path) -> None:
    """`selfplay human-rate`'s server, over HTTP as the page's script talks to it: two verdicts,
    the server stopped (the rater closed the page), a new one starting at the third sample, the
    rest rated, and the file folded in by `human-import`. Off the loopback it asks for its token."""
    import threading
    import urllib.error
    import urllib.request

    from league.human_rate import RatingSession, server

    run = _run_dir(tmp_path)
    assert main(["human-export", str(run), "--n", "4"]) == 0
    samples, verdicts = run / "human_eval" / "samples.jsonl", run / "human_eval" / "verdicts.jsonl"
    key = {k["sample_id"]: k for k in map(json.loads, (run / "human_eval_key.jsonl").read_text().splitlines())}

    def start(host: str = "127.0.0.1") -> tuple:
        httpd = server(RatingSession(samples, verdicts), host, 0)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"

    def call(url: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        return json.loads(urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30).read())

    def rate_current(base: str, state: dict) -> dict:  # the rater always prefers the current policy's answer
        sample = state["sample"]
        return call(f"{base}/verdict", {"sample_id": sample["sample_id"], "verdict": "1" if key[sample["sample_id"]]["policy_1"] == CURRENT else "2"})

    httpd, base = start()
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    assert "keydown" in page and '"t": "tie"' in page and "rated" in page
    state = call(base + "/next")
    assert (state["rated"], state["total"]) == (0, 4) and "current" not in json.dumps(state)  # still blind
    state = rate_current(base, rate_current(base, state))
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(base + "/verdict", {"sample_id": state["sample"]["sample_id"], "verdict": "3"})
    assert refused.value.code == 400 and "use 1, 2 or tie" in refused.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        call(f"{base}/rate", {"sample_id": state["sample"]["sample_id"], "verdict": "1"})
    assert elsewhere.value.code == 404
    httpd.shutdown()
    httpd.server_close()
    assert len(verdicts.read_text().splitlines()) == 2  # on disk as given

    httpd, base = start()
    state = call(base + "/next")
    assert state["rated"] == 2 and state["sample"]["sample_id"] not in read_verdicts(verdicts)
    state = rate_current(base, rate_current(base, state))
    assert state["sample"] is None and state["rated"] == 4
    httpd.shutdown()
    httpd.server_close()
    assert main(["human-import", str(run), str(verdicts)]) == 0
    league = League.load(run / "league.json")
    assert league.win_rate(CURRENT, "v0") == 1.0 and league.results[CURRENT]["v0"][1] == 4

    httpd, _ = start("0.0.0.0")
    port = httpd.server_address[1]
    with pytest.raises(urllib.error.HTTPError) as denied:
        call(f"http://127.0.0.1:{port}/next")
    assert denied.value.code == 403
    assert call(f"http://127.0.0.1:{port}/next?token={httpd.token}")["rated"] == 4
    httpd.shutdown()
    httpd.server_close()


def test_raters_rate_in_a_browser_with_the_keyboard_and_lose_nothing_when_the_server_restarts(tmp_path: Path) -> None:
    """The page in headless Chromium: keys 1 and 2 on two pairs, the server stopped, a new server
    and a new page going on at the third, keys t and 1 or 2, and the verdicts imported."""
    import threading

    from browser import keep_screenshot, page

    from league.human_rate import RatingSession, server

    run = _run_dir(tmp_path)
    assert main(["human-export", str(run), "--n", "4"]) == 0
    samples, verdicts = run / "human_eval" / "samples.jsonl", run / "human_eval" / "verdicts.jsonl"

    def rate(keys: list[str]) -> None:
        """Each key in turn; "current" is the key of the current policy's answer (its texts read cur<i>)."""
        httpd = server(RatingSession(samples, verdicts), "127.0.0.1", 0)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            with page() as (tab, errors):
                tab.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
                for key in keys:
                    progress = tab.locator("#progress")
                    progress.filter(has_text=" rated").wait_for()
                    before = progress.inner_text()
                    if key == "current":
                        key = "1" if tab.locator("#r1").inner_text().startswith("cur") else "2"
                    tab.keyboard.press(key)
                    tab.wait_for_function("(before) => document.getElementById('progress').textContent !== before", arg=before)
                keep_screenshot(tab, "human-rate")
                shown = tab.locator("#progress").inner_text()
                assert errors == [], errors
        finally:
            httpd.shutdown()
            httpd.server_close()
        rated = len(read_verdicts(verdicts))
        assert shown == f"{rated} of 4 rated"

    rate(["current", "current"])
    assert len(verdicts.read_text().splitlines()) == 2  # saved as given
    rate(["t", "current"])
    assert main(["human-import", str(run), str(verdicts)]) == 0
    league = League.load(run / "league.json")
    assert league.results[CURRENT]["v0"] == [3.5, 4]  # three wins and a tie
