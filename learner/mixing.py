"""Mixing real preference data with self-play pairs at a set ratio.

Real pairs (human labels, an existing preference set) anchor the policy where self-play
alone could drift; the ratio fixes how much of each update they make up, whatever the
number of self-play pairs an iteration happens to yield.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
TRUNCATION_COLUMNS = ("chosen_truncated", "rejected_truncated")  # an answer cut off at the token limit gets no end token


class PreferenceDataError(ValueError):
    """An external preference file that cannot be used; the message says what to change."""


def load_preferences(path: str | Path) -> pa.Table:
    """A Parquet or JSONL file with string columns prompt, chosen, rejected (others are ignored)."""
    return load_text_columns(path, PREFERENCE_COLUMNS, "preference data")


def as_preferences(data: pa.Table | list[dict] | str | Path) -> pa.Table:
    """Preference pairs from a table, a list of rows or a Parquet/JSONL path, checked and cut to
    prompt, chosen, rejected."""
    return as_text_columns(data, PREFERENCE_COLUMNS, "preference data")


def as_text_columns(data: pa.Table | list[dict] | str | Path, columns: tuple[str, ...], what: str) -> pa.Table:
    """A table of the string `columns` from a table, a list of rows or a file path."""
    if isinstance(data, (str, Path)):
        return load_text_columns(data, columns, what)
    if isinstance(data, list):
        data = pa.Table.from_pylist(data) if data else pa.table({c: pa.array([], pa.string()) for c in columns})
    if not isinstance(data, pa.Table):
        raise PreferenceDataError(f"{what}: expected a pyarrow Table, a list of dicts or a file path, got {type(data).__name__}")
    return _checked(data, columns, f"{what} (a {type(data).__name__})")


def load_text_columns(path: str | Path, columns: tuple[str, ...], what: str) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise PreferenceDataError(f"{what} {str(path)!r} does not exist")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix in (".jsonl", ".json"):
        table = pj.read_json(path)
    else:
        raise PreferenceDataError(f"{what} {str(path)!r}: expected a .parquet or .jsonl file")
    return _checked(table, columns, f"{what} {str(path)!r}")


def _checked(table: pa.Table, columns: tuple[str, ...], where: str) -> pa.Table:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise PreferenceDataError(f"{where} lacks column(s) {missing}; it needs {list(columns)}")
    table = table.select(list(columns))
    if table.num_rows == 0:
        raise PreferenceDataError(f"{where} has no rows")
    try:
        table = table.cast(pa.schema([(c, pa.string()) for c in columns]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise PreferenceDataError(f"{where}: {', '.join(columns)} must be text ({err})") from None
    if any(table.column(c).null_count for c in columns):
        raise PreferenceDataError(f"{where} has empty (null) values in {', '.join(columns)}")
    return table


def training_columns(pairs: pa.Table) -> pa.Table:
    """prompt, chosen, rejected and the truncation flags (false where a table has none or a null)."""
    columns = {name: pairs.column(name) for name in PREFERENCE_COLUMNS}
    for name in TRUNCATION_COLUMNS:
        flags = pairs.column(name) if name in pairs.column_names else pa.nulls(pairs.num_rows, pa.bool_())
        columns[name] = pc.fill_null(flags, False)
    return pa.table(columns)


def mix_preferences(self_play: pa.Table, external: pa.Table, ratio: float, rng: np.random.Generator) -> pa.Table:
    """Self-play pairs plus round(ratio x their number) external pairs drawn without replacement
    (with replacement once the external set is exhausted), with a `source` column saying which is which."""
    own = training_columns(self_play)
    own = own.append_column("source", pa.array(["self_play"] * own.num_rows, pa.string()))
    k = int(round(ratio * own.num_rows))
    if k == 0:
        return own
    idx = rng.choice(external.num_rows, size=k, replace=k > external.num_rows)
    extra = training_columns(external.take(pa.array(idx))).append_column("source", pa.array(["external"] * k, pa.string()))
    return pa.concat_tables([own, extra])


def count_source(table: pa.Table, source: str) -> int:
    return int(pc.sum(pc.equal(table.column("source"), source)).as_py() or 0)
