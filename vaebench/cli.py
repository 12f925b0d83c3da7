"""The command line: parses, calls the library, maps errors to exit codes (0 ok, 1 failed runs or
a regression, 2 a user error). A VaebenchError is printed as one line, never a traceback."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Callable, Sequence

from vaebench.errors import ConfigError, VaebenchError
from vaebench.params import Param

LIST_KINDS = ("variants", "datasets", "metrics", "suites")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors are user errors too
        raise ConfigError(message, key="command line")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train and score every run of a suite")
    p.add_argument("suite", help="suite file (TOML)")
    p.add_argument("--out", help="run directory (default runs/<suite name>/)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (local process pool)")
    p.add_argument("--executor", default="local", help="local | ray")
    p.add_argument("--address", help="Ray cluster address (ray executor)")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a failed Ray task")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--dry-run", action="store_true", help="list the runs and estimate their cost")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")


def _add_dir_command(sub: argparse._SubParsersAction, name: str, help_text: str, *,
                     suite_filter: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("dir", help="run directory holding results.sqlite")
    if suite_filter:
        p.add_argument("--suite", help="only the runs of this suite file (the directory may hold others)")
    return p


def _import_run_plugins(run_dir: str) -> None:
    """Import the plugins the directory's runs were made with, so their metrics are known; warn for missing ones."""
    from vaebench.bench.store import ResultsStore
    from vaebench.plugins import import_recorded_plugins

    with ResultsStore(run_dir, create=False) as store:
        missing = import_recorded_plugins(list(store.runs()["environment"]))
    if missing:
        print(f"vaebench: warning: plugins {', '.join(missing)} do not import here; their metrics are not shown",
              file=sys.stderr)


def _suite_runs(args: argparse.Namespace) -> tuple[str | None, set[str] | None]:
    """(the suite's name, its run ids) for --suite FILE, else (None, None)."""
    _import_run_plugins(args.dir)
    if getattr(args, "suite", None) is None:
        return None, None
    from vaebench.bench.suite import load_suite

    suite = load_suite(args.suite)
    return suite.name, {spec.run_id for spec in suite.specs}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaebench", description="Benchmark VAE-family generative models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    p = _add_dir_command(sub, "results", "print the comparison table of a run directory", suite_filter=True)
    p.add_argument("--format", default="table", help="table | csv | json | markdown")
    p.add_argument("--per-run", action="store_true", help="one row per run instead of per setting")
    p.add_argument("--metrics", help="comma-separated metric or value names to show (default: what fits 120 columns)")
    p.add_argument("--all", action="store_true", dest="all_values", help="show every value, per-latent ones included")
    p.add_argument("--step", help="the table at one budget: a step scored along training (or the end), or 'all'")
    p = _add_dir_command(sub, "show", "print one run's full spec, status and environment (JSON)")
    p.add_argument("run_id", help="a run id, or a unique prefix of one")
    p = _add_dir_command(sub, "report", "write tables, plots and an HTML report", suite_filter=True)
    p.add_argument("--out", help="report directory (default DIR/report)")
    p = _add_dir_command(sub, "baseline", "write the metric scores as a regression baseline", suite_filter=True)
    p.add_argument("--out", required=True, help="baseline file (JSON)")
    p = _add_dir_command(sub, "check", "compare the metric scores with a baseline", suite_filter=True)
    p.add_argument("--baseline", required=True, help="baseline file (JSON)")
    _add_dir_command(sub, "claims", "each variant's claim: effect, CI, p, verdict; exit 1 if one fails",
                     suite_filter=True)
    p = sub.add_parser("evaluate", help="score a model trained elsewhere into a run directory")
    p.add_argument("model", help="a TorchScript file with encode/decode methods, or module:function")
    p.add_argument("--dataset", required=True, help="dataset name (vaebench list datasets)")
    p.add_argument("--param", action="append", default=[], help="a dataset parameter, KEY=VALUE (repeat)")
    p.add_argument("--metrics", help="comma-separated metrics (default: every one that applies)")
    p.add_argument("--out", help="run directory (default runs/external)")
    p.add_argument("--name", help="the label of the model in tables (default: the file's stem)")
    p.add_argument("--likelihood", default="bernoulli", help="what decode's output parameterises")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p = _add_dir_command(sub, "prune", "forget runs: failed ones, or those not in a suite file (lists them first)")
    p.add_argument("--failed", action="store_true", help="runs that failed")
    p.add_argument("--not-in", dest="not_in", help="runs that are not in this suite file")
    p.add_argument("--yes", action="store_true", help="delete what the listing shows (default: only list)")
    p = sub.add_parser("list", help="list variants, datasets, metrics or suites")
    p.add_argument("kind", nargs="?", default="variants", help=" | ".join(LIST_KINDS))
    p.add_argument("--plugins", help="comma-separated plugin modules or .py files to import first")
    return parser


def _choice(value: str, allowed: Sequence[str], key: str) -> str:
    return Param(key, value, choices=tuple(allowed)).check(value)


def cmd_run(args: argparse.Namespace) -> int:
    from vaebench.bench.executors import threads_per_job
    from vaebench.bench.progress import make_progress
    from vaebench.bench.runner import EXECUTORS, make_executor, run_suite
    from vaebench.bench.suite import load_suite

    _choice(args.executor, EXECUTORS, "--executor")
    _choice(args.device, ("cpu", "cuda"), "--device")
    Param("--jobs", 1, minimum=1).check(args.jobs)
    Param("--max-retries", 2, minimum=0).check(args.max_retries)
    suite = load_suite(args.suite)
    if args.device == "cuda" and (args.executor == "local" or args.dry_run):  # on Ray, the cluster's GPUs count
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("CUDA is not available on this machine; use --device cpu", key="--device")
    if args.dry_run:
        from vaebench.bench.cost import print_dry_run

        print_dry_run(suite, device=args.device)
        return 0
    out = Path(args.out) if args.out else Path("runs") / suite.name
    executor = make_executor(args.executor, jobs=args.jobs, address=args.address, max_retries=args.max_retries)
    summary = run_suite(
        suite, out, executor, device=args.device, threads=threads_per_job(args.jobs), progress=make_progress(args.quiet)
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())) or "nothing new"
    print(f"{summary.total} runs: {summary.skipped} already in {out}, {counts}")
    if args.quiet is False:
        from vaebench.bench.store import ResultsStore
        from vaebench.reports.summary import format_results

        with ResultsStore(out, create=False) as store:
            print(format_results(store, "table"))
    return 1 if summary.failed else 0


def cmd_results(args: argparse.Namespace) -> int:
    from vaebench.bench.store import ResultsStore
    from vaebench.reports.summary import FORMATS, format_results

    _choice(args.format, FORMATS, "--format")
    if args.metrics is not None and args.all_values:
        raise ConfigError("give either --metrics or --all", key="--metrics")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    _, run_ids = _suite_runs(args)
    with ResultsStore(args.dir, create=False, run_ids=run_ids) as store:
        if args.step is not None:  # the table at one budget (vaebench.reports.trajectories)
            from vaebench.reports.trajectories import format_results_at

            print(format_results_at(store, args.step, args.format, per_run=args.per_run, metrics=metrics,
                                    all_values=args.all_values))
            return 0
        print(format_results(store, args.format, per_run=args.per_run, metrics=metrics, all_values=args.all_values))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from vaebench.bench.store import ResultsStore

    with ResultsStore(args.dir, create=False) as store:
        runs = store.runs()
    matches = runs[runs["run_id"].str.startswith(args.run_id)]
    if len(matches) != 1:
        found = "no run" if matches.empty else f"{len(matches)} runs"
        raise ConfigError(f"{found} with this id in {args.dir}", key="run_id")
    row = matches.iloc[0]
    shown = {k: row[k] for k in ("run_id", "suite", "setting", "status", "steps_done", "error", "spec", "environment")}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vaebench.reports.report import write_report

    out = Path(args.out) if args.out else Path(args.dir) / "report"
    _, run_ids = _suite_runs(args)
    written = write_report(args.dir, out, run_ids=run_ids)
    print(f"wrote {len(written)} files to {out}")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from vaebench.bench.store import ResultsStore
    from vaebench.reports.claims import claims_table, format_claims
    from vaebench.reports.trajectories import claims_trajectory_text

    _, run_ids = _suite_runs(args)
    with ResultsStore(args.dir, create=False, run_ids=run_ids) as store:
        table = claims_table(store.runs(), store.metrics())
        along = claims_trajectory_text(store)  # the verdict at every scored budget ('' with one budget)
    print(format_claims(table))
    if along:
        print(f"\n{along}")
    return 1 if (table["verdict"] == "fails").any() else 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from vaebench.reports.check import write_baseline

    suite, run_ids = _suite_runs(args)
    write_baseline(args.dir, args.out, suite=suite, run_ids=run_ids)
    print(f"wrote baseline {args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from vaebench.reports.check import check_against_baseline

    _, run_ids = _suite_runs(args)
    outcome = check_against_baseline(args.dir, args.baseline, run_ids=run_ids)
    print(outcome.table)
    return 1 if outcome.regressions else 0


def _dataset_param(text: str) -> tuple[str, object]:
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"must be KEY=VALUE, got {text!r}", key="--param")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare string such as a path
    return key.strip(), parsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vaebench.bench.external import evaluate_external

    _choice(args.device, ("cpu", "cuda"), "--device")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    params = dict(_dataset_param(p) for p in args.param)
    out = Path(args.out) if args.out else Path("runs") / "external"
    result = evaluate_external(args.model, args.dataset, params, out, label=args.name, metrics=metrics,
                               likelihood=args.likelihood, seed=args.seed, device=args.device)
    for name, why in result.environment["skipped_metrics"].items():
        print(f"skipped {name}: {why}")
    print(f"scored {args.model} as run {result.run_id} into {out}: {len(result.metrics)} values")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from vaebench.bench.runner import forget_runs
    from vaebench.bench.store import ResultsStore
    from vaebench.bench.suite import load_suite

    if not args.failed and args.not_in is None:
        raise ConfigError("say which runs to forget: --failed and/or --not-in SUITE", key="prune")
    keep = {spec.run_id for spec in load_suite(args.not_in).specs} if args.not_in else None
    with ResultsStore(args.dir, create=False) as store:
        runs = store.runs()
    chosen = runs[(runs["status"] == "failed") if args.failed else runs["status"].notna()]
    if keep is not None:
        chosen = chosen[~chosen["run_id"].isin(keep)]
    for r in chosen.itertuples():
        print(f"{r.run_id}  {r.suite}  {r.setting}  seed={r.seed}  {r.status}")
    if not args.yes:
        print(f"{len(chosen)} run(s) would be forgotten; add --yes to forget them")
        return 0
    forget_runs(Path(args.dir), list(chosen["run_id"]))
    print(f"forgot {len(chosen)} run(s) and their checkpoints and models")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kind = _choice(args.kind, LIST_KINDS, "list")
    from vaebench.plugins import import_plugins

    import_plugins([p.strip() for p in (args.plugins or "").split(",") if p.strip()], file="--plugins")
    if kind == "variants":
        from vaebench.variants import VARIANTS

        for name, cls in VARIANTS.items():
            print(f"{name:14s} {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ''}")
    elif kind == "datasets":
        from vaebench.data import DATASETS

        print("\n".join(DATASETS.names()))
    elif kind == "metrics":
        from vaebench.metrics import METRICS

        for name, info in METRICS.items():
            print(f"{name:14s} {info.direction:6s} {info.description}")
    else:
        for path in sorted(Path("suites").glob("*.toml")):
            print(path)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "results": cmd_results, "show": cmd_show, "report": cmd_report, "claims": cmd_claims,
    "baseline": cmd_baseline, "check": cmd_check, "evaluate": cmd_evaluate, "prune": cmd_prune, "list": cmd_list,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except VaebenchError as err:
        print(f"vaebench: error: {_one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a full disk, a read-only or missing path: the system's words, one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"vaebench: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except sqlite3.Error as err:  # e.g. "database or disk is full" while the driver writes a result
        print(f"vaebench: error: results store: {_one_line(str(err))}; the runs stored before it are kept, "
              "run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaebench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
