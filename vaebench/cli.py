"""The command line: parses, calls the library, maps errors to exit codes (0 ok, 1 failed runs or
a regression, 2 a user error). A VaebenchError is printed as one line, never a traceback."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from vaebench.errors import ConfigError, UserCodeError, VaebenchError
from vaebench.files import printable
from vaebench.params import Param

if TYPE_CHECKING:
    from vaebench.bench.suite import Suite

LIST_KINDS = ("variants", "datasets", "metrics", "suites")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's usage errors are user errors too
        raise ConfigError(message, key="command line")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train and score every run of a suite")
    p.add_argument("suite", help="suite file (TOML)")
    _add_run_options(p)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="run directory (default runs/<suite name>/)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (local process pool)")
    p.add_argument("--executor", default="local", help="local | ray")
    p.add_argument("--address", help="Ray cluster address (ray executor)")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a failed Ray task")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--dry-run", action="store_true", help="list the runs and estimate their cost")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--track", help="live tracking: tensorboard,mlflow (NAME=DIR_OR_URI for a destination), or none")


def _echo(*parts: object, file: TextIO | None = None) -> None:
    """print, for everything a command writes: text read from a store, a suite or a file name (a setting,
    an error) may hold control characters; they are shown escaped, never sent to the terminal raw."""
    print(*(printable(str(p)) for p in parts), file=file)


PLUGINS_HELP = "comma-separated plugin modules or .py files to import first"


def _add_dir_command(sub: argparse._SubParsersAction, name: str, help_text: str, *,
                     suite_filter: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("dir", help="run directory holding results.sqlite")
    if suite_filter:
        p.add_argument("--suite", help="only the runs of this suite file (the directory may hold others)")
    p.add_argument("--plugins", help=PLUGINS_HELP + " (a reading command imports no other code, "
                   "not even the plugins the runs were made with)")
    return p


def _given_plugins(args: argparse.Namespace) -> set[str]:
    """Import the installed plugins and those --plugins names; the names imported."""
    from vaebench.plugins import import_plugins, imported_plugins

    import_plugins([p.strip() for p in (args.plugins or "").split(",") if p.strip()], file="--plugins")
    return {p["name"] for p in imported_plugins()}


def _read_setup(args: argparse.Namespace) -> set[str]:
    """For a reading command: import what the user named (never what the store records), and name
    the plugins the directory's runs used that were not imported. The names imported."""
    from vaebench.bench.store import ResultsStore
    from vaebench.plugins import not_imported, recorded_plugins

    imported = _given_plugins(args)
    with ResultsStore(args.dir, create=False) as store:
        missing = not_imported(recorded_plugins(list(store.runs()["environment"])))
    if missing:
        _echo(f"vaebench: note: the runs in {args.dir} used the plugins {', '.join(missing)}, which a reading command "
              "does not import unless --plugins names them; their metrics and claims are not shown", file=sys.stderr)
    return imported


def _suite_runs(args: argparse.Namespace) -> tuple[str | None, set[str] | None]:
    """(the suite's name, its run ids) for --suite FILE, else (None, None); imports only --plugins."""
    imported = _read_setup(args)
    if getattr(args, "suite", None) is None:
        return None, None
    from vaebench.bench.suite import load_suite

    suite = load_suite(args.suite, allowed_plugins=imported)
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
    p = sub.add_parser("reproduce", help="list the published values, or run the suite that reproduces one")
    p.add_argument("reference", nargs="?", help="a reference id (vaebench reproduce --list)")
    p.add_argument("--list", action="store_true", dest="list_references", help="id, source and value of each")
    p.add_argument("--data-root", help="the folder holding the datasets' folders (sets $VAEBENCH_DATA)")
    _add_run_options(p)
    p = _add_dir_command(sub, "compare", "each published value beside the measured one: difference, verdict",
                         suite_filter=True)
    p.add_argument("--format", default="table", help="table | markdown | csv | json")
    p.add_argument("--all", action="store_true", dest="every", help="also list the references no run reproduces")
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
    p.add_argument("--plugins", help=PLUGINS_HELP)
    return parser


def _choice(value: str, allowed: Sequence[str], key: str) -> str:
    return Param(key, value, choices=tuple(allowed)).check(value)


def cmd_run(args: argparse.Namespace) -> int:
    from vaebench.bench.suite import load_suite

    check_run_options(args)
    return run_loaded_suite(load_suite(args.suite), args)


def check_run_options(args: argparse.Namespace) -> None:
    from vaebench.bench.environment import DEVICES
    from vaebench.bench.runner import EXECUTORS

    _choice(args.executor, EXECUTORS, "--executor")
    _choice(args.device, DEVICES, "--device")
    Param("--jobs", 1, minimum=1).check(args.jobs)
    Param("--max-retries", 2, minimum=0).check(args.max_retries)


def run_loaded_suite(suite: Suite, args: argparse.Namespace) -> int:
    """`vaebench run`'s work on a loaded suite (options checked by `check_run_options`)."""
    from vaebench.bench.environment import check_device
    from vaebench.bench.executors import threads_per_job
    from vaebench.bench.progress import make_progress
    from vaebench.bench.runner import make_executor, run_suite
    from vaebench.tracking import parse_track_option, resolve_tracking

    if args.executor == "local" or args.dry_run:  # on Ray, the cluster's GPUs count
        check_device(args.device)
    if args.dry_run:
        from vaebench.bench.cost import print_dry_run

        print_dry_run(suite, device=args.device)
        return 0
    out = Path(args.out) if args.out else Path("runs") / suite.name
    tracking = None if args.track is None else resolve_tracking(parse_track_option(args.track, suite.tracking), out,
                                                                suite.name)
    executor = make_executor(args.executor, jobs=args.jobs, address=args.address, max_retries=args.max_retries)
    summary = run_suite(
        suite, out, executor, device=args.device, threads=threads_per_job(args.jobs),
        progress=make_progress(args.quiet), tracking=tracking,
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())) or "nothing new"
    _echo(f"{summary.total} runs: {summary.skipped} already in {out}, {counts}")
    if args.quiet is False:
        from vaebench.bench.store import ResultsStore
        from vaebench.reports.summary import format_results

        with ResultsStore(out, create=False) as store:
            _echo(format_results(store, "table"))
    return 1 if summary.failed else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from vaebench.cli_reproduce import reproduce

    return reproduce(args, check_run_options, run_loaded_suite)


def cmd_compare(args: argparse.Namespace) -> int:
    from vaebench.reports.reproduction import FORMATS, compare_store, format_rows

    _choice(args.format, FORMATS, "--format")
    _, run_ids = _suite_runs(args)
    print(format_rows(compare_store(args.dir, run_ids=run_ids, every=args.every), args.format))
    return 0


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

            _echo(format_results_at(store, args.step, args.format, per_run=args.per_run, metrics=metrics,
                                    all_values=args.all_values))
            return 0
        _echo(format_results(store, args.format, per_run=args.per_run, metrics=metrics, all_values=args.all_values))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from vaebench.bench.store import ResultsStore

    _read_setup(args)
    with ResultsStore(args.dir, create=False) as store:
        runs = store.runs()
    matches = runs[runs["run_id"].str.startswith(args.run_id)]
    if len(matches) != 1:
        found = "no run" if matches.empty else f"{len(matches)} runs"
        raise ConfigError(f"{found} with this id in {args.dir}", key="run_id")
    row = matches.iloc[0]
    shown = {k: row["spec"].to_dict() if k == "spec" else row[k]
             for k in ("run_id", "suite", "setting", "status", "steps_done", "error", "spec", "environment")}
    _echo(json.dumps(shown, indent=2, default=str))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vaebench.reports.report import write_report

    out = Path(args.out) if args.out else Path(args.dir) / "report"
    _, run_ids = _suite_runs(args)
    written = write_report(args.dir, out, run_ids=run_ids)
    _echo(f"wrote {len(written)} files to {out}")
    from vaebench.tracking import log_report

    for line in log_report(args.dir, out):  # to the trackers of the directory's last sweep, if it had any
        _echo(line)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from vaebench.bench.store import ResultsStore
    from vaebench.reports.claims import claims_table, format_claims
    from vaebench.reports.comparison import Comparison
    from vaebench.reports.trajectories import StoreFrames, claims_trajectory_text

    _, run_ids = _suite_runs(args)
    with ResultsStore(args.dir, create=False, run_ids=run_ids) as store:
        frames = StoreFrames.read(store)
    table = claims_table(Comparison.of(frames.runs, frames.metrics))
    along = claims_trajectory_text(frames)  # the verdict at every scored budget ('' with one budget)
    _echo(format_claims(table))
    if along:
        _echo(f"\n{along}")
    return 1 if (table["verdict"] == "fails").any() else 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from vaebench.reports.check import write_baseline

    suite, run_ids = _suite_runs(args)
    write_baseline(args.dir, args.out, suite=suite, run_ids=run_ids)
    _echo(f"wrote baseline {args.out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from vaebench.reports.check import check_against_baseline

    _, run_ids = _suite_runs(args)
    outcome = check_against_baseline(args.dir, args.baseline, run_ids=run_ids)
    _echo(outcome.table)
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
    except RecursionError:
        raise ConfigError(f"{key.strip()}: nested too deeply to read", key="--param") from None
    return key.strip(), parsed


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vaebench.bench.external import evaluate_external

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    params = dict(_dataset_param(p) for p in args.param)
    out = Path(args.out) if args.out else Path("runs") / "external"
    result = evaluate_external(args.model, args.dataset, params, out, label=args.name, metrics=metrics,
                               likelihood=args.likelihood, seed=args.seed, device=args.device)
    for name, why in result.environment["skipped_metrics"].items():
        _echo(f"skipped {name}: {why}")
    _echo(f"scored {args.model} as run {result.run_id} into {out}: {len(result.metrics)} values")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from vaebench.bench.runner import forget_runs
    from vaebench.bench.spec import RunStatus
    from vaebench.bench.store import ResultsStore
    from vaebench.bench.suite import load_suite

    if not args.failed and args.not_in is None:
        raise ConfigError("say which runs to forget: --failed and/or --not-in SUITE", key="prune")
    imported = _read_setup(args)
    keep = {spec.run_id for spec in load_suite(args.not_in, allowed_plugins=imported).specs} if args.not_in else None
    with ResultsStore(args.dir, create=False) as store:
        runs = store.runs()
    chosen = runs[(runs["status"] == RunStatus.FAILED) if args.failed else runs["status"].notna()]
    if keep is not None:
        chosen = chosen[~chosen["run_id"].isin(keep)]
    for r in chosen.itertuples():
        _echo(f"{r.run_id}  {r.suite}  {r.setting}  seed={r.seed}  {r.status}")
    if not args.yes:
        _echo(f"{len(chosen)} run(s) would be forgotten; add --yes to forget them")
        return 0
    forget_runs(Path(args.dir), list(chosen["run_id"]))
    _echo(f"forgot {len(chosen)} run(s) and their checkpoints and models")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kind = _choice(args.kind, LIST_KINDS, "list")
    _given_plugins(args)
    if kind == "variants":
        from vaebench.variants import VARIANTS

        for name, cls in VARIANTS.items():
            _echo(f"{name:14s} {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ''}")
    elif kind == "datasets":
        from vaebench.data import DATASETS

        _echo("\n".join(DATASETS.names()))
    elif kind == "metrics":
        from vaebench.metrics import METRICS

        for name, info in METRICS.items():
            _echo(f"{name:14s} {info.direction:6s} {info.description}")
    else:
        for path in sorted(Path("suites").glob("*.toml")):
            _echo(path)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "results": cmd_results, "show": cmd_show, "report": cmd_report, "claims": cmd_claims,
    "baseline": cmd_baseline, "check": cmd_check, "evaluate": cmd_evaluate, "prune": cmd_prune, "list": cmd_list,
    "reproduce": cmd_reproduce, "compare": cmd_compare,
}


def _one_line(text: str) -> str:
    from vaebench.files import safe_text

    return " ".join(safe_text(text).split())


def _run_command(args: argparse.Namespace) -> int:
    """The command; a sys.exit() from user code it called (a plugin, a model, a dataset) is a UserCodeError,
    never this process's exit status."""
    from vaebench.plugins import user_code_failure

    try:
        return COMMANDS[args.command](args)
    except SystemExit as err:
        raise UserCodeError(user_code_failure(err, f"vaebench {args.command}")) from None


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name's undecodable bytes print escaped, never raise
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        return _run_command(args)
    except VaebenchError as err:
        _echo(f"vaebench: error: {_one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a full disk, a read-only or missing path: the system's words, one line
        where = f"{err.filename}: " if err.filename else ""
        _echo(f"vaebench: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except sqlite3.Error as err:  # e.g. "database or disk is full" while the driver writes a result
        _echo(f"vaebench: error: results store: {_one_line(str(err))}; the runs stored before it are kept, "
              "run the same command again to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _echo("vaebench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
