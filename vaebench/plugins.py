"""Users' modules: variants, metrics, datasets and claims registered the way vaebench registers its own.

A suite lists `plugins = ["my_vaes", "lab.metrics", "path/to/file.py"]`; installed packages may
also register through the entry-point group `vaebench.plugins`. Importing a plugin runs its
`@register_variant`, `@register_metric` and `@register_dataset` decorators. The driver imports
a suite's plugins when it loads the suite, and every worker (in process, the `--jobs N` pool,
Ray) imports them again before it builds a run, so a plugin works on every executor.

A plugin's name and version (or, for a file, its SHA-256) go into each run's environment; its
code is part of nothing else (the run id is the spec).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vaebench.errors import ConfigError
from vaebench.files import file_sha256

ENTRY_POINT_GROUP = "vaebench.plugins"


@dataclass(frozen=True)
class Plugin:
    """An imported plugin: its module name (or absolute file path), and the version (or file hash) imported."""

    name: str
    version: str

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _import_file(path: Path) -> None:
    digest = file_sha256(path)
    module_name = f"vaebench_plugin_{path.stem}_{digest[:12]}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


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
    if not isinstance(name, str) or not name:
        raise ConfigError(f"must be a module name or a .py file, got {name!r}", file=file, key="plugins")
    is_file = name.endswith(".py") or "/" in name
    try:
        if is_file:
            path = Path(name).expanduser()
            if not path.is_absolute() and file is not None:
                path = Path(file).parent / path
            if not path.is_file():
                raise ConfigError(f"plugin file {name!r} not found", file=file, key="plugins")
            path = path.resolve()
            _import_file(path)
            return Plugin(str(path), f"sha256:{file_sha256(path)}")
        importlib.import_module(name)
        return Plugin(name, module_version(name))
    except ConfigError:
        raise
    except ValueError as err:  # a registry refusing a name registered twice
        raise ConfigError(f"plugin {name!r}: {first_line(err)}", file=file, key="plugins") from None
    except Exception as err:  # noqa: BLE001 - whatever the user's module raises on import
        raise ConfigError(f"plugin {name!r} does not import: {first_line(err)}", file=file, key="plugins") from None


_ENTRY_POINTS_LOADED: list[Plugin] = []


def import_entry_point_plugins() -> tuple[Plugin, ...]:
    """Import the installed packages' plugins (entry-point group `vaebench.plugins`), once per process."""
    if not _ENTRY_POINTS_LOADED:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except Exception as err:  # noqa: BLE001
                raise ConfigError(f"installed plugin {entry.value!r} does not import: {first_line(err)}",
                                  key="entry point vaebench.plugins") from None
            _ENTRY_POINTS_LOADED.append(Plugin(entry.value, module_version(entry.module)))
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


def import_recorded_plugins(environments: Sequence[dict]) -> list[str]:
    """Import the plugins recorded in runs' environments (so a reading command knows their metrics);
    the names that no longer import, which the caller may report."""
    missing = []
    names = sorted({p["name"] for env in environments for p in env.get("plugins", []) if "name" in p})
    for name in names:
        try:
            import_plugin(name)
        except ConfigError:
            missing.append(name)
    return missing
