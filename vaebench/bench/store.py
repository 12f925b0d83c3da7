"""The SQLite results store (`results.sqlite` in the run directory), written by the driver alone.

Tables:
    runs      (run_id PK, suite, variant, setting, dataset, seed, spec JSON, status, diverged_step,
               error, steps_done, wall_time_s, steps_per_s, finished_at, environment JSON,
               setting_key: the spec's `RunSpec.setting_key()`)
    metrics   (run_id, name, value, note, ceiling)   PK (run_id, name)
    curves    (run_id, step, name, value)            PK (run_id, step, name)
    artifacts (run_id, name, data BLOB)              PK (run_id, name)   e.g. image grids (PNG)
    suite_runs (suite, run_id)                       PK (suite, run_id)  every suite a run belongs to
    metrics_along (run_id, step, name, value, note, ceiling)  PK (run_id, step, name) scored along
                                                     training (vaebench.bench.along_table; absent from older stores)

`setting` is the setting's label (what tables show); `setting_key` its identity. A value's
`ceiling` is the most it can be on its evaluation set, where its estimator has one (mi_xz's
log N), else NULL. `status` is a `RunStatus` value (the CHECK constraint is generated from it).

Stores written before `setting_key` and `ceiling` existed stay readable: a driver that opens one
adds the columns (NULL in the rows already there), and the reading methods compute a NULL
`setting_key` from the spec and read a NULL ceiling where those stores kept it, in the value's
note (`vaebench.metrics.registry.Ceiling.from_note`).

A run's rows are written in one transaction, replacing any earlier rows of that run, so
the store holds exactly one row set per run whatever happened before. Reading commands open
the file read-only (they work in a read-only directory); a file that is not a vaebench store
(empty, truncated, another program's database, unparsable rows) is a DataError naming it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pandas as pd

from vaebench.bench import along_table  # metrics scored along training
from vaebench.bench.spec import ExternalSpec, RunResult, RunSpec, RunStatus, spec_from_dict
from vaebench.errors import DataError
from vaebench.files import finite_or_none, safe_text, safe_value
from vaebench.metrics.registry import declaration_of  # which values have a ceiling (read from older stores' notes)

STORE_NAME = "results.sqlite"
STATUS_VALUES = ", ".join(f"'{s.value}'" for s in RunStatus)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    variant TEXT NOT NULL,
    setting TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({STATUS_VALUES})),
    diverged_step INTEGER,
    error TEXT,
    steps_done INTEGER NOT NULL,
    wall_time_s REAL NOT NULL,
    steps_per_s REAL NOT NULL,
    finished_at TEXT NOT NULL,
    environment TEXT NOT NULL,
    setting_key TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    value REAL,
    note TEXT,
    ceiling REAL,
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
CREATE TABLE IF NOT EXISTS suite_runs (
    suite TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (suite, run_id)
);
"""
SQLITE_HEADER = b"SQLite format 3\x00"
# columns added after stores existed: (table, column, type); a driver adds them to an older store
ADDED_COLUMNS = (("runs", "setting_key", "TEXT"), ("metrics", "ceiling", "REAL"))
# the columns each table must have; suite_runs may be absent from stores written before it existed
REQUIRED_COLUMNS = {
    "runs": {"run_id", "suite", "variant", "setting", "dataset", "seed", "spec", "status", "diverged_step", "error",
             "steps_done", "wall_time_s", "steps_per_s", "finished_at", "environment"},
    "metrics": {"run_id", "name", "value", "note"},
    "curves": {"run_id", "step", "name", "value"},
    "artifacts": {"run_id", "name", "data"},
}


def _check_header(path: Path) -> None:
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        what = "an empty file" if not header else "not an SQLite database"
        raise DataError(f"{path}: {what}, not a vaebench results store (move it away or pick another --out)")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; in a read-only directory (no WAL index can be made) the file is read as immutable."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(f"file:{path}?immutable=1", uri=True)


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """DataError unless the database is empty or has vaebench's tables and columns."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return
    for table, columns in REQUIRED_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not columns <= have:
            raise DataError(f"{path}: another program's database (table {table!r} is missing or has other columns), "
                            "not a vaebench results store")


def _parse_json(text: str, path: Path, run_id: str, column: str) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested too deeply (a crafted store)
        value = None
    if not isinstance(value, dict):
        raise DataError(f"{path}: run {run_id}: the {column} column is not a JSON object (the store was edited)")
    return value


def _parse_spec(text: str, path: Path, run_id: str) -> RunSpec | ExternalSpec:
    spec = _parse_json(text, path, run_id, "spec")
    try:
        return spec_from_dict(spec)
    except (TypeError, KeyError, ValueError) as err:
        raise DataError(f"{path}: run {run_id}: the spec column is not a spec this vaebench reads ({err}); the store "
                        "was edited or written by another version") from None


def _safe_note(note: str | None) -> str | None:
    return safe_text(note) if note is not None else None


def add_columns(conn: sqlite3.Connection, added: tuple[tuple[str, str, str], ...]) -> None:
    """Add the `(table, column, type)` columns a store written before they existed lacks (NULL in its rows)."""
    for table, column, kind in added:
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def pivot_values(values: pd.DataFrame) -> pd.DataFrame:
    """Long values (run_id, name, value, ...) as one row per run_id: a column per value name (sorted)."""
    wide = values.pivot(index="run_id", columns="name", values="value").reset_index()
    wide.columns.name = None
    return wide


def with_ceilings(values: pd.DataFrame) -> pd.DataFrame:
    """Long values with their `ceiling` column complete: where a row has none stored (a store written before
    ceilings were stored as data, or a table without the column), the one its note records, for the values
    whose declaration has a ceiling (`Ceiling.from_note`)."""
    out = values if "ceiling" in values else values.assign(ceiling=float("nan"))
    missing = out["ceiling"].isna()
    if not missing.any():
        return out
    out = out.copy()
    declared = {name: declaration_of(name) for name in out.loc[missing, "name"].unique()}
    ceilings = {name: d.value.ceiling for name, d in declared.items() if d is not None and d.value.ceiling}
    rows = missing & out["name"].isin(set(ceilings))
    out.loc[rows, "ceiling"] = [ceilings[n].from_note(note) for n, note in zip(out.loc[rows, "name"],
                                                                               out.loc[rows, "note"])]
    out["ceiling"] = out["ceiling"].astype(float)
    return out


class ResultsStore:
    """One SQLite file; `write_result` is the only writer and is transactional."""

    def __init__(self, path: str | Path, *, create: bool = True, run_ids: set[str] | None = None):
        """`path`: a run directory (its results.sqlite) or a .sqlite file.

        create: open for writing, creating the file and its tables if needed (the driver);
            False opens an existing store read-only (every reading command).
        run_ids: read only these runs (e.g. one suite file's) in `runs`, `metrics`, `curves`, `artifacts`.
        """
        path = Path(path)
        self.only = run_ids
        self.path = path if path.suffix == ".sqlite" else path / STORE_NAME
        if path.exists() and not path.is_dir() and path.suffix != ".sqlite":
            raise DataError(f"{path}: is a file, not a run directory")
        if not create and not self.path.is_file():
            raise DataError(f"{self.path}: no results store here (run `vaebench run` first)")
        if self.path.exists():
            _check_header(self.path)
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, timeout=30)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
                _check_schema(self._conn, self.path)
                with self._conn:
                    self._conn.executescript(SCHEMA + along_table.SCHEMA)
                    add_columns(self._conn, ADDED_COLUMNS + along_table.ADDED_COLUMNS)
            else:
                self._conn = _connect_read_only(self.path)
                _check_schema(self._conn, self.path)
        except sqlite3.DatabaseError as err:
            raise DataError(f"{self.path}: not a readable results store ({err})") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def completed_run_ids(self) -> set[str]:
        """Runs with a recorded outcome (done or diverged); failed runs are retried."""
        recorded = tuple(s.value for s in RunStatus if s.recorded)
        rows = self._conn.execute(f"SELECT run_id FROM runs WHERE status IN ({', '.join('?' * len(recorded))})",
                                  recorded)
        return {r[0] for r in rows}

    def write_result(self, result: RunResult, *, suite: str, setting: str) -> None:
        """Replace the run's rows with `result`'s, in one transaction; `setting` is the run's label (its
        identity, `RunSpec.setting_key()`, is stored beside it). Text that UTF-8 cannot encode (a file
        name's undecodable bytes in an error) is stored escaped."""
        spec = result.spec
        error = safe_text(result.error) if result.error is not None else None
        environment = json.dumps(safe_value(result.environment), sort_keys=True)
        with self._conn:  # one transaction
            along_table.forget_rows(self._conn, [result.run_id])  # scoring along training
            for table in ("metrics", "curves", "artifacts", "runs"):
                self._conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (result.run_id,))
            self._conn.execute(
                "INSERT INTO runs (run_id, suite, variant, setting, dataset, seed, spec, status, diverged_step, error, "
                "steps_done, wall_time_s, steps_per_s, finished_at, environment, setting_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.run_id, safe_text(suite), spec.variant, safe_text(setting), spec.dataset, spec.seed,
                    spec.canonical_json(), RunStatus(result.status).value, result.diverged_step, error,
                    result.steps_done, result.wall_time_s, result.steps_per_s,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"), environment, spec.setting_key(),
                ),
            )
            self._conn.executemany(
                "INSERT INTO metrics (run_id, name, value, note, ceiling) VALUES (?, ?, ?, ?, ?)",
                [(result.run_id, n, finite_or_none(v), _safe_note(result.notes.get(n)),
                  finite_or_none(result.ceilings.get(n))) for n, v in sorted(result.metrics.items())],
            )
            self._conn.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?)",
                [(result.run_id, s, n, finite_or_none(v)) for s, n, v in result.curves],
            )
            self._conn.executemany(
                "INSERT INTO artifacts VALUES (?, ?, ?)",
                [(result.run_id, n, d) for n, d in sorted(result.artifacts.items())],
            )
            along_table.insert_rows(self._conn, result)  # scoring along training

    def record_suite(self, suite: str, run_ids: list[str]) -> None:
        """Record that the runs belong to `suite` (a renamed suite that reuses runs lists them too)."""
        with self._conn:
            self._conn.executemany("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", [(suite, r) for r in run_ids])

    def has_suite_table(self) -> bool:
        return bool(self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'suite_runs'").fetchone())

    def suite_run_ids(self, suite: str) -> set[str]:
        """The runs recorded against `suite` (by `record_suite`, or as their first suite)."""
        ids = {r[0] for r in self._conn.execute("SELECT run_id FROM runs WHERE suite = ?", (suite,))}
        if self.has_suite_table():
            ids |= {r[0] for r in self._conn.execute("SELECT run_id FROM suite_runs WHERE suite = ?", (suite,))}
        return ids

    def forget(self, run_ids: list[str]) -> None:
        """Delete the runs and everything stored of them, in one transaction."""
        with self._conn:
            along_table.forget_rows(self._conn, run_ids)  # scoring along training
            for table in ("metrics", "curves", "artifacts", "suite_runs", "runs"):
                self._conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(r,) for r in run_ids])

    def runs(self) -> pd.DataFrame:
        """One row per run: `spec` parsed (`spec_from_dict`: a RunSpec, or an ExternalSpec for a model scored by
        `vaebench evaluate`), `environment` into a dict, `setting_key` the spec's (computed from it for rows
        written before the column existed)."""
        df = pd.read_sql_query("SELECT * FROM runs ORDER BY suite, dataset, setting, seed", self._conn)
        df = self._restrict(df)
        df["environment"] = [_parse_json(t, self.path, r, "environment")
                             for t, r in zip(df["environment"], df["run_id"])]
        df["spec"] = [_parse_spec(t, self.path, r) for t, r in zip(df["spec"], df["run_id"])]
        stored = df["setting_key"] if "setting_key" in df else pd.Series(None, index=df.index, dtype=object)
        df["setting_key"] = [k if isinstance(k, str) else s.setting_key() for k, s in zip(stored, df["spec"])]
        return df

    def _restrict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame if self.only is None else frame[frame["run_id"].isin(self.only)].reset_index(drop=True)

    def metrics(self) -> pd.DataFrame:
        """Long format: run_id, name, value, note, ceiling (see `with_ceilings`)."""
        return with_ceilings(self._restrict(pd.read_sql_query("SELECT * FROM metrics ORDER BY run_id, name",
                                                              self._conn)))

    def curves(self) -> pd.DataFrame:
        return self._restrict(pd.read_sql_query("SELECT * FROM curves ORDER BY run_id, name, step", self._conn))

    def along(self) -> pd.DataFrame:
        """Metrics scored along training (vaebench.bench.along_table), long: run_id, step, name, value, note,
        ceiling (see `with_ceilings`)."""
        return with_ceilings(self._restrict(along_table.read_rows(self._conn, self.path)))

    def artifacts(self, run_id: str | None = None) -> dict[tuple[str, str], bytes]:
        query = "SELECT run_id, name, data FROM artifacts"
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        return {(r, n): d for r, n, d in self._conn.execute(query, args) if self.only is None or r in self.only}

    def wide(self) -> pd.DataFrame:
        """One row per run with its identifying columns and one column per metric value."""
        return wide_runs(self.runs(), self.metrics())


RUN_COLUMNS = ["run_id", "suite", "dataset", "variant", "setting", "seed", "status", "wall_time_s", "steps_per_s"]


def wide_runs(runs: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """The runs' RUN_COLUMNS and one column per value name (`pivot_values` of the long `values`)."""
    runs = runs[RUN_COLUMNS]
    return runs if values.empty else runs.merge(pivot_values(values), on="run_id", how="left")
