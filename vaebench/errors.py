"""Every error a user can cause. The CLI prints one line and exits 2 for these."""

from __future__ import annotations


class VaebenchError(Exception):
    """A mistake in the user's input: the message names the file, the key and what is allowed."""

    exit_code = 2


class ConfigError(VaebenchError):
    """A suite file, baseline file or hyperparameter that is malformed or out of range."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.detail = message
        where = ""
        if file:
            where += f"{file}: "
        if key:
            where += f"key '{key}': "
        super().__init__(where + message)

    def located(self, file: str | None, prefix: str = "") -> ConfigError:
        """The same error with the file (and a key prefix such as 'variants[1].') filled in."""
        key = f"{prefix}{self.key}" if self.key else (prefix.rstrip(".") or None)
        return ConfigError(self.detail, file=self.file or file, key=key)


class UnknownNameError(ConfigError):
    """A variant, dataset, metric, architecture ... name that is not registered."""


class DataError(VaebenchError):
    """A dataset file that is missing or not in the expected format."""


class BaselineMismatchError(VaebenchError):
    """A baseline file that does not match the results it is checked against."""


class MissingDependencyError(VaebenchError):
    """An optional extra (such as ray) is needed but not installed."""


class RunDirectoryBusyError(VaebenchError):
    """Another vaebench driver holds the run directory."""


class UserCodeError(VaebenchError):
    """A user's plugin, model or dataset code that raised or exited (sys.exit) where vaebench called it."""


class ContractError(VaebenchError):
    """A model or dataset that broke its contract on real data: a batch of the wrong shape, dtype or range,
    or values that are not finite."""


class NonFiniteOutputError(ContractError):
    """A model whose outputs are NaN or infinite: for a trained run, its weights diverged."""
