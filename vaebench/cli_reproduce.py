"""`vaebench reproduce --list | REFERENCE_ID [run options]`: the published values, or a run of the
suite that reproduces one (only its runs that reproduce that value; `--dry-run` lists them with
their cost). `--data-root DIR` sets $VAEBENCH_DATA for this process and its local workers."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from vaebench.errors import ConfigError


def reproduce(args: argparse.Namespace, check_run_options: Callable[[argparse.Namespace], None],
              run_loaded_suite: Callable[..., int]) -> int:
    from vaebench.bench.reproduction import reference_suite_path, suite_for_reference
    from vaebench.bench.suite import load_suite
    from vaebench.data.data_root import DATA_ROOT_VARIABLE
    from vaebench.reference import get_reference
    from vaebench.reports.reproduction import list_references

    if args.list_references:
        if args.reference is not None:
            raise ConfigError("give --list or a reference id, not both", key="reproduce")
        print(list_references())
        return 0
    if args.reference is None:
        raise ConfigError("give a reference id (vaebench reproduce --list shows them) or --list", key="reproduce")
    ref = get_reference(args.reference)
    if args.data_root is not None:
        root = Path(args.data_root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{root}: no such directory (the folder holding the datasets' folders)",
                              key="--data-root")
        os.environ[DATA_ROOT_VARIABLE] = str(root.resolve())
    check_run_options(args)
    suite = suite_for_reference(load_suite(reference_suite_path(ref.id)), ref.id)
    print(f"{ref.id}: {ref.value:g} ({ref.metric.name}), {ref.source.citation}, {ref.where}")
    print(f"suite {ref.suite}: {len(suite.specs)} of its runs reproduce it")
    for departure in ref.departures:
        print(f"  departure: {departure}")
    return run_loaded_suite(suite, args)
