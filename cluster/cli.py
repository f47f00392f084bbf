"""`selfplay`: the command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cluster.config import ConfigError, load_recipe
from cluster.run_dir import RunDirError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfplay", description="Self-play preference training on Ray and vLLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe on this machine (the built-in default when none is given)")
    run.add_argument("recipe", nargs="?", type=Path, help="YAML recipe; default: the built-in demo")
    run.add_argument("--run-dir", type=Path, help="where to write the run (default runs/run-<date>-<time>)")
    run.add_argument("--iterations", type=int, help="self-play iterations (self_play.iterations)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key, e.g. dpo.beta=0.2")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-iteration rows")
    args = parser.parse_args(argv)

    try:
        overrides = _overrides(args.set)
        if args.run_dir is not None:
            overrides["run_dir"] = str(args.run_dir)
        if args.iterations is not None:
            overrides["self_play.iterations"] = args.iterations
        config = load_recipe(args.recipe, overrides)
    except ConfigError as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2

    from cluster.run import run_self_play  # Ray and torch load only once the recipe is valid

    try:
        summary = run_self_play(config, overwrite=args.overwrite, show_progress=not args.quiet)
    except RunDirError as err:
        print(f"selfplay: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


def _overrides(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set dpo.beta=0.2")
        out[key] = yaml.safe_load(value)
    return out


if __name__ == "__main__":
    sys.exit(main())
