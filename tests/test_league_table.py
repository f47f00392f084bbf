import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from cluster.cli import main
from league.league import CURRENT, GameResult, League, LeagueSettings
from league.table import league_table, render


def _league() -> League:
    league = League(LeagueSettings(k_factor=16))
    league.admit(0, "/ckpt/v0")
    league.record([GameResult(CURRENT, "v0", 1.0)] * 30 + [GameResult(CURRENT, "v0", 0.0)] * 10)
    league.admit(4, "/ckpt/v4")
    league.record([GameResult(CURRENT, "v4", 1.0)] * 5 + [GameResult(CURRENT, "v4", 0.5)] * 10 + [GameResult(CURRENT, "v4", 0.0)] * 5)
    return league


def test_table_rows() -> None:
    rows = league_table(_league(), np.random.default_rng(0), samples=50)
    assert [r["policy"] for r in rows] == ["v0", "v4", CURRENT]
    assert [r["version"] for r in rows] == [0, 4, None]
    assert [r["games"] for r in rows] == [40, 20, 60]
    current = rows[-1]
    assert current["win_rate_vs_previous"] == pytest.approx(0.5)  # against v4: 5 wins, 10 ties, 5 losses
    assert rows[0]["win_rate_vs_previous"] is None
    for r in rows:
        assert r["bt_low"] <= r["bt"] <= r["bt_high"]
    assert rows[0]["bt"] < current["bt"]


def test_cli_writes_text_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "run").mkdir()
    _league().save(tmp_path / "run" / "league.json")
    assert main(["league", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["policy", "version", "elo"] and "current" in text
    assert main(["league", str(tmp_path / "run"), "--format", "csv", "--output", str(tmp_path / "t.csv")]) == 0
    assert [r["policy"] for r in csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text()))] == ["v0", "v4", "current"]
    assert main(["league", str(tmp_path / "run"), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["league", str(tmp_path / "nowhere")]) == 2
    assert "no league state" in capsys.readouterr().err
    assert render([], "text").startswith("policy")
