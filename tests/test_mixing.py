import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from learner.mixing import PreferenceDataError, count_source, load_preferences, mix_preferences

ROWS = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}", "note": "x"} for i in range(10)]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loads_jsonl_and_parquet_alike(tmp_path: Path) -> None:
    from_jsonl = load_preferences(_jsonl(tmp_path / "prefs.jsonl", ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "prefs.parquet")
    from_parquet = load_preferences(tmp_path / "prefs.parquet")
    assert from_jsonl.column_names == ["prompt", "chosen", "rejected"]
    assert from_jsonl.equals(from_parquet)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "does not exist"),
        ("prefs.csv", "prompt,chosen,rejected\n", "expected a .parquet or .jsonl"),
        ("nochosen.jsonl", [{"prompt": "p", "rejected": "r"}], r"lacks column\(s\) \['chosen'\]"),
    ],
)
def test_bad_files_are_refused_with_what_to_change(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, list):
        _jsonl(path, content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(PreferenceDataError, match=message):
        load_preferences(path)


def test_mix_adds_ratio_times_the_self_play_pairs(tmp_path: Path) -> None:
    external = load_preferences(_jsonl(tmp_path / "prefs.jsonl", ROWS))
    own = pa.table({"prompt": ["a"] * 8, "chosen": ["b"] * 8, "rejected": ["c"] * 8, "pair_id": list("abcdefgh")})
    mixed = mix_preferences(own, external, 0.5, np.random.default_rng(0))
    assert mixed.num_rows == 12
    assert count_source(mixed, "self_play") == 8 and count_source(mixed, "external") == 4
    extra = mixed.filter(pa.compute.equal(mixed.column("source"), "external")).to_pylist()
    assert len({r["prompt"] for r in extra}) == 4  # drawn without replacement
    assert {r["prompt"] for r in extra} <= {r["prompt"] for r in ROWS}
    # more than the file holds: drawn with replacement; ratio 0: nothing added
    assert mix_preferences(own, external, 2.0, np.random.default_rng(0)).num_rows == 24
    assert mix_preferences(own, external, 0.0, np.random.default_rng(0)).num_rows == 8
