"""The store's table of metrics scored along training (`vaebench.bench.trajectory`):

    metrics_along (run_id, step, name, value, note, ceiling)      PK (run_id, step, name)

`ResultsStore` calls these functions inside its own transactions: a run's rows are replaced
with the rest of its result, in the same transaction, and forgotten with it. A store written
before the table existed gets it the next time a driver opens it; a reading command on such a
store (opened read-only, so nothing is created) reads no rows. A table written before the
`ceiling` column existed gets it the same way (see `vaebench.bench.store`), and is read with
that column NULL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from vaebench.bench.spec import AlongValue, RunResult
from vaebench.errors import DataError
from vaebench.files import finite_or_none

TABLE = "metrics_along"
COLUMNS = ["run_id", "step", "name", "value", "note", "ceiling"]
REQUIRED = COLUMNS[:-1]  # a table written before `ceiling` existed has the others
ADDED_COLUMNS = ((TABLE, "ceiling", "REAL"),)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    note TEXT,
    ceiling REAL,
    PRIMARY KEY (run_id, step, name)
);
"""


def has_table(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone())


def insert_rows(conn: sqlite3.Connection, result: RunResult) -> None:
    """Insert `result.along` (after the run's `runs` row, which they reference, and after `forget_rows`
    removed the earlier ones); the caller holds the transaction."""
    rows = sorted((AlongValue(*row) for row in result.along), key=lambda r: (r.step, r.name))
    conn.executemany(
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
        [(result.run_id, int(r.step), r.name, finite_or_none(r.value), r.note, finite_or_none(r.ceiling))
         for r in rows],
    )


def forget_rows(conn: sqlite3.Connection, run_ids: Iterable[str]) -> None:
    """Delete the runs' rows (before their `runs` rows: they reference them); the caller holds the
    transaction. A store without the table has none."""
    if has_table(conn):
        conn.executemany(f"DELETE FROM {TABLE} WHERE run_id = ?", [(r,) for r in run_ids])


def read_rows(conn: sqlite3.Connection, path: Path) -> pd.DataFrame:
    """Every row, long format (COLUMNS); empty when the store has no such table (written before it existed),
    `ceiling` NULL where the table was written before that column existed."""
    if not has_table(conn):
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ("object", "int64", "object", "float64",
                                                                            "object", "float64"))})
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")}
    if not set(REQUIRED) <= have:
        raise DataError(f"{path}: table {TABLE!r} has other columns than vaebench's, not a vaebench results store")
    columns = ", ".join(c if c in have else f"NULL AS {c}" for c in COLUMNS)
    return pd.read_sql_query(f"SELECT {columns} FROM {TABLE} ORDER BY run_id, step, name", conn)
