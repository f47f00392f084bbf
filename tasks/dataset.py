"""A user's own prompts: JSONL, JSON, Parquet or CSV files, a `datasets` dataset saved with
`save_to_disk`, or a Hub dataset (where the machine can reach the Hub), all read through the
`datasets` library, with a column mapping and a fixed held-out split.

Everything is checked when the recipe is read, so a missing column, an empty file, a bad line
or a prompt that is not text stops the run before anything is written, naming the file, the
row and what to fix.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prompts.example import Example
from tasks.base import WIN_RATE, TaskError, TaskOptions, task_kind

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class Columns(BaseModel):
    """Which column holds what. Give `prompt` (text) or `messages` (a list of {role, content})."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str | None = "prompt"
    messages: str | None = None
    reference: str | None = Field(None, description="the reference answer a verifier checks against")
    tests: str | None = Field(None, description="unit tests (code tasks)")
    setup: str | None = Field(None, description="code run before the answer's (imports the prompt and the tests assume)")
    system: str | None = Field(None, description="a per-row system prompt")
    id: str | None = Field(None, description="a stable id; left out, a hash of the prompt")


@task_kind
class DatasetOptions(TaskOptions):
    """Prompts from a data set. The held-out split is, in this order of preference: the file
    `held_out_path`; the rows whose `split_column` equals `held_out_value`; or one row in
    `held_out_every` by a stable hash of its id (never by position, so adding rows moves none)."""

    kind: Literal["dataset"] = "dataset"
    path: str = Field(description="a data file, a save_to_disk directory, or a Hub dataset name")
    name: str | None = Field(None, description="the Hub dataset's configuration")
    split: str = Field("train", description="the split to read (Hub datasets and DatasetDicts)")
    columns: Columns = Columns()
    held_out_path: str | None = None
    held_out_split: str = Field("test", description="the split read from held_out_path (Hub datasets and DatasetDicts)")
    split_column: str | None = None
    held_out_value: str = "test"
    held_out_every: int = Field(10, ge=2)
    held_out_size: int = Field(256, ge=1, description="at most this many held-out prompts (a seeded sample)")
    train_size: int | None = Field(None, ge=1, description="at most this many training prompts (a seeded sample)")
    metric: str | None = Field(
        None, description="the verifier scoring held-out answers, code (pass@1) or win_rate_vs_v0 (the judge's preference "
        "for the current policy over v0); default: the judge's kind, or win_rate_vs_v0 under a model judge",
    )
    metric_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _readable(self) -> DatasetOptions:
        if self.columns.prompt is None and self.columns.messages is None:
            raise ValueError("columns: give prompt (a text column) or messages (a chat column)")
        if self.metric not in (None, WIN_RATE):
            _scorer(self.metric, self.metric_options)  # an unknown verifier or option fails here
        try:
            train, held = split_rows(self)
            self._check_metric(train[:100] + held)
        except TaskError as err:
            raise ValueError(str(err)) from None
        if not train:
            raise ValueError(f"{self.path}: every row is held out; lower the held-out share or give held_out_path")
        if not held:
            raise ValueError(f"{self.path}: no row is held out; give held_out_path, split_column or a smaller held_out_every")
        if self.held_out_path is not None and {e.id for e in train} & {e.id for e in held}:
            raise ValueError(f"{self.held_out_path}: rows also in {self.path} (same ids); the held-out split must be unseen")
        local = {k: str(Path(v).expanduser().resolve()) for k, v in (("path", self.path), ("held_out_path", self.held_out_path))
                 if v is not None and Path(v).expanduser().exists()}  # a Ray job runs elsewhere
        return self.model_copy(update=local) if local else self

    @property
    def has_references(self) -> bool:
        return self.columns.reference is not None

    @property
    def has_tests(self) -> bool:
        return self.columns.tests is not None

    def with_judge(self, kind: str, options: dict[str, Any]) -> DatasetOptions:
        """Without a metric of its own the task is scored as the judge scores: its verifier, the
        code judge (pass@1), or, under a model judge, the judge's win rate against v0."""
        from judge.registry import CODE, MODEL_KINDS
        from judge.rules import VERIFIERS

        if self.metric is not None:
            return self
        if kind in VERIFIERS or kind == CODE:  # validated again: the metric must fit the rows
            return type(self).model_validate({**self.model_dump(), "metric": kind, "metric_options": dict(options)})
        if kind in MODEL_KINDS:
            return self.model_copy(update={"metric": WIN_RATE})
        raise ValueError(f"task kind {self.kind} judged by {kind} needs task.metric (a verifier, code or {WIN_RATE})")

    def _check_metric(self, examples: list[Example]) -> None:
        """A verifier needs references it can read and the code judge needs tests: each reference,
        scored as its own answer, must not fail (a `numeric` metric on "Paris" fails here, naming the row)."""
        if self.metric in (None, WIN_RATE):
            return
        from judge.base import JudgeError
        from judge.registry import CODE

        if self.metric == CODE:
            if not self.has_tests:
                raise TaskError("task metric code runs each row's unit tests: set task.columns.tests")
            return
        if not self.has_references:
            raise TaskError(f"task metric {self.metric} checks answers against references: set task.columns.reference")
        score = _scorer(self.metric, self.metric_options)
        for example in examples:
            try:
                score(example, example.answer)
            except (JudgeError, ValueError) as err:
                raise TaskError(f"{self.path}: the reference of row {example.id!r} does not fit metric {self.metric}: {err}") from None

    def rows(self, path: str, split: str) -> list[dict[str, Any]]:
        """The rows of `path` (a kind with built-in data sets, such as code, adds names here)."""
        return read_rows(path, self.name, split)

    def build(self, seed: int) -> DatasetTask:
        train, held = split_rows(self)
        return DatasetTask(self, train, held, seed)


def _scorer(metric: str, options: dict[str, Any]) -> Any:
    """`score(example, response)` of a verifier, or of the code judge (its options are its limits)."""
    return _judge(metric, options).score


def _judge(metric: str, options: dict[str, Any]) -> Any:
    from judge.code import CodeJudge
    from judge.registry import CODE
    from judge.rules import RuleJudge, check_verifier

    if metric == CODE:
        return CodeJudge.from_options(options)
    check_verifier(metric, options)
    return RuleJudge(metric, options)


def read_rows(path: str, name: str | None, split: str) -> list[dict[str, Any]]:
    """Rows of a data file, a saved dataset or a Hub dataset, through `datasets`."""
    import datasets

    datasets.disable_progress_bars()  # a recipe check, not a long job
    try:
        return _read(datasets, path, name, split)
    finally:
        datasets.enable_progress_bars()


def _read(datasets: Any, path: str, name: str | None, split: str) -> list[dict[str, Any]]:
    local = Path(path).expanduser()
    if local.is_dir() and ((local / "dataset_info.json").is_file() or (local / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise TaskError(f"{path}: no split {split!r}; it has {', '.join(loaded)}")
            loaded = loaded[split]
        return _nonempty(loaded.to_list(), path)
    if local.suffix in FILE_BUILDERS:
        if not local.is_file():
            raise TaskError(f"{path}: no such file; give a .jsonl, .json, .parquet or .csv file, or a save_to_disk directory")
        if local.suffix == ".jsonl":
            _check_json_lines(local)
        try:
            loaded = datasets.load_dataset(FILE_BUILDERS[local.suffix], data_files=str(local), split="train")
        except Exception as err:  # datasets wraps every parse error in its own types
            raise TaskError(f"{path}: could not be read as {local.suffix[1:]}: {err}") from None
        return _nonempty(loaded.to_list(), path)
    if local.exists():
        raise TaskError(f"{path}: not a data file (.jsonl, .json, .parquet, .csv) nor a dataset saved with save_to_disk")
    try:
        return _nonempty(datasets.load_dataset(path, name, split=split).to_list(), path)
    except Exception as err:
        raise TaskError(f"{path}: not a local file and not a Hub dataset this machine can load ({type(err).__name__}: {err})") from None


def _check_json_lines(path: Path) -> None:
    """Name the first bad line of a JSONL file (datasets' own error names none)."""
    rows = 0
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TaskError(f"{path}: line {number} is not JSON ({err.msg}); every line must be one JSON object") from None
            if not isinstance(row, dict):
                raise TaskError(f"{path}: line {number} is a JSON {type(row).__name__}, not an object with the columns")
            rows += 1
    if not rows:
        raise TaskError(f"{path}: no rows; the task needs at least one prompt")


def _nonempty(rows: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    if not rows:
        raise TaskError(f"{path}: no rows; the task needs at least one prompt")
    return rows


def to_example(row: dict[str, Any], c: Columns, where: str) -> Example:
    """One row as an `Example`, or a `TaskError` saying which column of which row is wrong."""
    for column in (c.messages or c.prompt, c.reference, c.tests, c.setup, c.system, c.id):
        if column is not None and column not in row:
            raise TaskError(f"{where}: no column {column!r} (columns: {', '.join(row)}); set task.columns to the right names")
    if c.messages is not None:
        prompt: Any = row[c.messages]
        if not (isinstance(prompt, list) and prompt and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt)):
            raise TaskError(f"{where}: column {c.messages!r} must be a non-empty list of {{role, content}} messages")
        prompt = [{"role": str(m.get("role") or "user"), "content": m["content"]} for m in prompt]
    else:
        prompt = row[c.prompt or "prompt"]  # a column map without messages names a prompt column
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskError(f"{where}: column {c.prompt!r} must be non-empty text, not {prompt!r}")
    if c.system is not None and row[c.system]:
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        turns = [t for t in turns if t["role"] != "system"]  # the row's system prompt replaces the messages' own
        prompt = [{"role": "system", "content": str(row[c.system])}, *turns]
    reference = _text(row, c.reference, where)
    tests = _text(row, c.tests, where)
    setup = _text(row, c.setup, where)
    ident = str(row[c.id]) if c.id is not None else ""
    return Example(prompt, reference, tests, ident, {"setup": setup} if setup else {})


def _text(row: dict[str, Any], column: str | None, where: str) -> str | None:
    if column is None:
        return None
    value = row[column]
    if value is None or isinstance(value, (dict, list)):
        raise TaskError(f"{where}: column {column!r} must be text or a number, not {value!r}")
    return str(value)


def split_rows(o: DatasetOptions) -> tuple[list[Example], list[Example]]:
    """The training and held-out examples, in file order."""
    rows = o.rows(o.path, o.split)
    if o.held_out_path is not None:
        held_rows = o.rows(o.held_out_path, o.held_out_split)
        return _examples(rows, o, o.path), _examples(held_rows, o, o.held_out_path)
    if o.split_column is not None:
        if o.split_column not in rows[0]:
            raise TaskError(f"{o.path}: no split column {o.split_column!r} (columns: {', '.join(rows[0])})")
        held = [r for r in rows if str(r[o.split_column]) == o.held_out_value]
        train = [r for r in rows if str(r[o.split_column]) != o.held_out_value]
        return _examples(train, o, o.path), _examples(held, o, o.path)
    examples = _examples(rows, o, o.path)
    held_out = [_hashed(e.id) % o.held_out_every == 0 for e in examples]
    return [e for e, h in zip(examples, held_out) if not h], [e for e, h in zip(examples, held_out) if h]


def _examples(rows: list[dict[str, Any]], o: DatasetOptions, path: str) -> list[Example]:
    return [to_example(r, o.columns, f"{path}, row {i + 1}") for i, r in enumerate(rows)]


def _hashed(ident: str) -> int:
    return int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "little")


class DatasetTask:
    name = "dataset"

    def __init__(self, options: DatasetOptions, train: list[Example], held: list[Example], seed: int) -> None:
        self.options = options
        rng = np.random.default_rng(seed + 1234)
        self.pool = _sample(train, options.train_size, rng)
        self.fixed = _sample(held, options.held_out_size, rng)
        if options.metric is None:
            raise TaskError(f"task kind dataset needs metric: a verifier, code or {WIN_RATE} (or a judge whose kind it takes)")
        self.open_ended = options.metric == WIN_RATE
        self._judge = None if self.open_ended else _judge(options.metric, options.metric_options)

    def train(self, n: int, rng: np.random.Generator) -> list[Example]:
        """`n` prompts drawn with replacement from the training rows."""
        return [self.pool[i] for i in rng.integers(len(self.pool), size=n)]

    def sft(self, n: int, rng: np.random.Generator) -> list[Example]:
        if self.options.columns.reference is None:
            raise TaskError(f"{self.options.path}: no reference column to warm up on; set task.columns.reference or sft.steps: 0")
        return self.train(n, rng)

    def held_out(self) -> list[Example]:
        return list(self.fixed)

    def score(self, example: Example, response: str) -> float:
        return self.score_all([example], [response])[0]

    def score_all(self, examples: list[Example], responses: list[str]) -> list[float]:
        """Scores of many answers at once (the code judge runs its sandboxes in parallel)."""
        if self._judge is None:
            raise TaskError(f"{self.options.path}: an open-ended task scores no single answer; its metric is {WIN_RATE}")
        return [float(x) for x in self._judge.score_all(examples, responses)]


def _sample(examples: list[Example], size: int | None, rng: np.random.Generator) -> list[Example]:
    if size is None or size >= len(examples):
        return examples
    return [examples[i] for i in sorted(rng.choice(len(examples), size=size, replace=False))]
