"""Data paths that name an environment variable: `path = "${VAEBENCH_DATA}/binarized_mnist"`.

A suite that reproduces a published number is shared between machines whose copies of the data
live in different places. It names the folder through an environment variable, which is
expanded where the dataset is built (when the suite loads, and in every worker), never in the
suite: the run's spec, and so its run id, hold the text as written, the same on every machine;
the files actually read are identified by the dataset's content hash and file digests, which
every run records.

    export VAEBENCH_DATA=/data            # the folder holding binarized_mnist/, mnist/, ...
    vaebench reproduce pythae2022-vae-binarized-mnist      # or: --data-root /data

`$NAME` and `${NAME}` are expanded (NAME: letters, digits, underscores, not starting with a
digit); a variable that is not set is a ConfigError on the key `path` that names it, never a
silently literal `$NAME`. `~` is expanded after the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from vaebench.errors import ConfigError

DATA_ROOT_VARIABLE = "VAEBENCH_DATA"
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand_path_variables(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with each `$NAME` / `${NAME}` replaced by the variable's value, then `~` expanded.

    ConfigError (key `path`) for a variable that is unset or empty, or a `$` that starts no name.
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        found = env.get(name, "")
        if not found:
            hint = (f" (the folder holding the datasets' folders, e.g. `export {DATA_ROOT_VARIABLE}=/data`, or "
                    "`vaebench reproduce --data-root DIR`)") if name == DATA_ROOT_VARIABLE else ""
            raise ConfigError(f"{text!r} names the environment variable {name}, which is not set{hint}", key="path")
        return found

    expanded = _VARIABLE.sub(value, text)
    if "$" in _VARIABLE.sub("", text):
        raise ConfigError(f"{text!r}: a '$' must start a variable name, $NAME or ${{NAME}}", key="path")
    return os.path.expanduser(expanded)
