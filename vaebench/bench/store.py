"""The SQLite results store (`results.sqlite` in the run directory), written by the driver alone.

Tables:
    runs      (run_id PK, suite, variant, setting, dataset, seed, spec JSON, status, diverged_step,
               error, steps_done, wall_time_s, steps_per_s, finished_at, environment JSON)
    metrics   (run_id, name, value, note)            PK (run_id, name)
    curves    (run_id, step, name, value)            PK (run_id, step, name)
    artifacts (run_id, name, data BLOB)              PK (run_id, name)   e.g. image grids (PNG)

A run's rows are written in one transaction, replacing any earlier rows of that run, so
the store holds exactly one row set per run whatever happened before.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pandas as pd

from vaebench.bench.spec import RunResult
from vaebench.errors import DataError

STORE_NAME = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    variant TEXT NOT NULL,
    setting TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')),
    diverged_step INTEGER,
    error TEXT,
    steps_done INTEGER NOT NULL,
    wall_time_s REAL NOT NULL,
    steps_per_s REAL NOT NULL,
    finished_at TEXT NOT NULL,
    environment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    value REAL,
    note TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""


def _finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class ResultsStore:
    """One SQLite file; `write_result` is the only writer and is transactional."""

    def __init__(self, path: str | Path, *, create: bool = True):
        """`path`: a run directory (its results.sqlite) or a .sqlite file."""
        path = Path(path)
        self.path = path if path.suffix == ".sqlite" else path / STORE_NAME
        if not create and not self.path.exists():
            raise DataError(f"{self.path}: no results store here (run `vaebench run` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._conn:
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def completed_run_ids(self) -> set[str]:
        """Runs with a recorded outcome (done or diverged); failed runs are retried."""
        rows = self._conn.execute("SELECT run_id FROM runs WHERE status IN ('done', 'diverged')")
        return {r[0] for r in rows}

    def write_result(self, result: RunResult, *, suite: str, setting: str) -> None:
        """Replace the run's rows with `result`'s, in one transaction; `setting` is the run's label."""
        spec = result.spec
        with self._conn:  # one transaction
            for table in ("metrics", "curves", "artifacts", "runs"):
                self._conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (result.run_id,))
            self._conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.run_id, suite, spec.variant, setting, spec.dataset, spec.seed,
                    spec.canonical_json(), result.status, result.diverged_step, result.error,
                    result.steps_done, result.wall_time_s, result.steps_per_s,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"), json.dumps(result.environment, sort_keys=True),
                ),
            )
            self._conn.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?)",
                [(result.run_id, n, _finite_or_none(v), result.notes.get(n)) for n, v in sorted(result.metrics.items())],
            )
            self._conn.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?)",
                [(result.run_id, s, n, _finite_or_none(v)) for s, n, v in result.curves],
            )
            self._conn.executemany(
                "INSERT INTO artifacts VALUES (?, ?, ?)", [(result.run_id, n, d) for n, d in sorted(result.artifacts.items())]
            )

    def runs(self) -> pd.DataFrame:
        """One row per run; `spec` and `environment` parsed into dicts."""
        df = pd.read_sql_query("SELECT * FROM runs ORDER BY suite, dataset, setting, seed", self._conn)
        df["spec"] = df["spec"].map(json.loads)
        df["environment"] = df["environment"].map(json.loads)
        return df

    def metrics(self) -> pd.DataFrame:
        """Long format: run_id, name, value, note."""
        return pd.read_sql_query("SELECT * FROM metrics ORDER BY run_id, name", self._conn)

    def curves(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM curves ORDER BY run_id, name, step", self._conn)

    def artifacts(self, run_id: str | None = None) -> dict[tuple[str, str], bytes]:
        query, args = "SELECT run_id, name, data FROM artifacts", ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        return {(r, n): d for r, n, d in self._conn.execute(query, args)}

    def wide(self) -> pd.DataFrame:
        """One row per run with its identifying columns and one column per metric value."""
        runs = self.runs()[["run_id", "suite", "dataset", "variant", "setting", "seed", "status", "wall_time_s", "steps_per_s"]]
        m = self.metrics()
        if m.empty:
            return runs
        values = m.pivot(index="run_id", columns="name", values="value").reset_index()
        values.columns.name = None
        return runs.merge(values, on="run_id", how="left")
