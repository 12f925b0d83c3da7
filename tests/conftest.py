"""Shared fixtures: a tiny suite file written to tmp_path; torch's thread count kept per test.
Helpers that test modules import live in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers import tiny_suite_text

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """write_suite(text=None, **kwargs) -> path of a suite file in tmp_path."""

    def _write(text: str | None = None, filename: str = "suite.toml", **kwargs: Any) -> Path:
        path = tmp_path / filename
        path.write_text(text if text is not None else tiny_suite_text(**kwargs))
        return path

    return _write


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty cache directory shared by the tests of one module (a module may define its own)."""
    return tmp_path_factory.mktemp("vaebench_cache")


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """A run sets torch's thread count; give the next test the count it started with."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add synchronisation, which on a shared 2-core
    machine costs far more than the arithmetic. Modules of small-tensor tests use it with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
