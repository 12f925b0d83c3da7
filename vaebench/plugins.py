"""Users' modules: variants, metrics, datasets and claims registered the way vaebench registers its own.

A suite lists `plugins = ["my_vaes", "lab.metrics", "path/to/file.py"]`; installed packages may
also register through the entry-point group `vaebench.plugins`. Importing a plugin runs its
`@register_variant`, `@register_metric` and `@register_dataset` decorators. The driver imports
a suite's plugins when it loads the suite, and every worker (in process, the `--jobs N` pool,
Ray) imports them again before it builds a run, so a plugin works on every executor.

A plugin's name, version and the SHA-256 of its source go into each run's environment and its
checkpoints: a run resumed after its plugin changed restarts from step 0 (see `bench.train`).
The run id is the spec alone.

Only the user names code to import: a suite they run, `--plugins`, `evaluate MODEL`, or an
installed package's entry point. Reading commands never import what a store records (a run
directory someone sends can hold any name); they name the plugins its runs used instead.
Whatever the user's code does on import, an exception or `sys.exit()`, is one ConfigError
naming the module (`user_code_failure`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vaebench.errors import ConfigError, VaebenchError
from vaebench.files import file_sha256

ENTRY_POINT_GROUP = "vaebench.plugins"
FILE_MODULE_PREFIX = "vaebench_plugin_"  # the module name of a plugin imported from a .py file


@dataclass(frozen=True)
class Plugin:
    """An imported plugin: its module name (or absolute file path), the version (or file hash) imported,
    and the SHA-256 of its source (`source_sha256`), which changes with any edit of its code."""

    name: str
    version: str
    source: str = ""

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "source": self.source}


def first_line(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# What user code may raise that vaebench turns into one line: any exception, and SystemExit
# (sys.exit() in a plugin or a model must not end a sweep as if it had succeeded).
USER_CODE_ERRORS = (Exception, SystemExit)


def raising_module(error: BaseException) -> str | None:
    """The module (or file) of the innermost frame outside vaebench, torch and the standard
    library in `error`'s traceback: the user's code that raised or exited, where there is one."""
    tb, found = error.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        name = frame.f_globals.get("__name__", "")
        if not _is_library(name, frame.f_code.co_filename):
            file_plugin = name.startswith(FILE_MODULE_PREFIX) or not name or name == "__main__"
            found = frame.f_code.co_filename if file_plugin else name
        tb = tb.tb_next
    return found


def _is_library(module: str, filename: str) -> bool:
    root = module.split(".")[0]
    return root in ("vaebench", "torch", "numpy", "scipy", "sklearn", "pandas", "importlib", "concurrent") \
        or root in sys.stdlib_module_names or filename.startswith("<frozen")


def user_code_failure(error: BaseException, what: str) -> str:
    """One line for an error raised by user code while doing `what`: the module and the error."""
    module = raising_module(error)
    where = f" in {module}" if module else ""
    return f"{what} failed{where}: {first_line(error)}"


@contextmanager
def calling_user_code(what: str, *, file: str | None = None, key: str | None = None) -> Iterator[None]:
    """Around a call that may run user code (a plugin's dataset, hyperparameters, variant, metric; a model):
    an exception raised in user code, or any sys.exit(), becomes one ConfigError naming the module.
    vaebench's own errors pass unchanged (a VaebenchError already is one line; anything else is a bug)."""
    try:
        yield
    except VaebenchError:
        raise
    except USER_CODE_ERRORS as err:
        if isinstance(err, SystemExit) or raising_module(err) is not None:
            raise ConfigError(user_code_failure(err, what), file=file, key=key) from None
        raise


def _resolve(name: str, file: str | None) -> tuple[str, Path | None]:
    """(the plugin's identity: a module name or an absolute file path, the file or None);
    a ConfigError when a file plugin does not exist. Imports nothing."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"must be a module name or a .py file, got {name!r}", file=file, key="plugins")
    if not (name.endswith(".py") or "/" in name):
        return name, None
    path = Path(name).expanduser()
    if not path.is_absolute() and file is not None:
        path = Path(file).parent / path
    if not path.is_file():
        raise ConfigError(f"plugin file {name!r} not found", file=file, key="plugins")
    path = path.resolve()
    return str(path), path


def plugin_identity(name: str, *, file: str | None = None) -> str:
    """The name a plugin is recorded under (a module name, or a file's absolute path), without importing it."""
    return _resolve(name, file)[0]


def _import_file(path: Path) -> None:
    digest = file_sha256(path)
    module_name = f"{FILE_MODULE_PREFIX}{path.stem}_{digest[:12]}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: Python finds no module loader for this file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def source_sha256(module_name: str) -> str:
    """'sha256:<hex>' of an imported module's source: its file, or every .py file of a package
    (relative names and contents); 'unknown' for a module without files (built in, namespace)."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return "unknown"
    path = Path(file)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(path.parent).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(f)))
    return f"sha256:{digest.hexdigest()}"


def plugin_source(name: str) -> str:
    """The source hash of an imported plugin (a module name or an absolute .py path), as recorded in a
    run's environment, from its files as they are now."""
    path = Path(name) if name.endswith(".py") or "/" in name else None
    return _version_and_source(name, path if path is not None and path.is_file() else None)[1]


def _version_and_source(identity: str, path: Path | None) -> tuple[str, str]:
    if path is not None:
        digest = f"sha256:{file_sha256(path)}"
        return digest, digest
    return module_version(identity), source_sha256(identity)


def module_version(module_name: str) -> str:
    module = sys.modules.get(module_name)
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(module_name.split(".")[0])
        except importlib.metadata.PackageNotFoundError:
            version = "unversioned"
    return str(version)


def import_plugin(name: str, *, file: str | None = None) -> Plugin:
    """Import one plugin (a module name, or the path of a .py file); ConfigError in one line if it fails."""
    identity, path = _resolve(name, file)
    try:
        if path is not None:
            _import_file(path)
        else:
            importlib.import_module(name)
    except ValueError as err:  # a registry refusing a name registered twice
        raise ConfigError(f"plugin {name!r}: {first_line(err)}", file=file, key="plugins") from None
    except USER_CODE_ERRORS as err:  # whatever the user's module raises on import, or its sys.exit()
        raise ConfigError(f"plugin {name!r} does not import: {first_line(err)}", file=file, key="plugins") from None
    return Plugin(identity, *_version_and_source(identity, path))


_ENTRY_POINTS_LOADED: list[Plugin] = []


def import_entry_point_plugins() -> tuple[Plugin, ...]:
    """Import the installed packages' plugins (entry-point group `vaebench.plugins`), once per process."""
    if not _ENTRY_POINTS_LOADED:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except USER_CODE_ERRORS as err:
                raise ConfigError(f"installed plugin {entry.value!r} does not import: {first_line(err)}",
                                  key="entry point vaebench.plugins") from None
            _ENTRY_POINTS_LOADED.append(Plugin(entry.value, module_version(entry.module), source_sha256(entry.module)))
    return tuple(_ENTRY_POINTS_LOADED)


_NAMED: dict[str, Plugin] = {}


def import_plugins(names: Sequence[str], *, file: str | None = None) -> tuple[Plugin, ...]:
    """Import the installed plugins and `names`; the named ones (file plugins by absolute path)."""
    if not isinstance(names, (list, tuple)):
        raise ConfigError(f"must be an array of module names or .py files, got {names!r}", file=file, key="plugins")
    import_entry_point_plugins()
    plugins = tuple(import_plugin(n, file=file) for n in names)
    _NAMED.update((p.name, p) for p in plugins)
    return plugins


def imported_plugins() -> list[dict[str, str]]:
    """Every plugin this process has imported, for a run's environment."""
    return [p.describe() for p in (*_ENTRY_POINTS_LOADED, *_NAMED.values())]


def recorded_plugins(environments: Sequence[dict]) -> list[str]:
    """The names of the plugins recorded in runs' environments (read, never imported)."""
    names = set()
    for env in environments:
        plugins = env.get("plugins") if isinstance(env, dict) else None
        for p in plugins if isinstance(plugins, list) else []:
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                names.add(p["name"])
    return sorted(names)


def not_imported(names: Sequence[str]) -> list[str]:
    """Those of `names` this process has not imported as plugins."""
    have = {p["name"] for p in imported_plugins()}
    return [n for n in names if n not in have]
