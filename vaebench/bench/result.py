"""What a run hands back to the driver: picklable, so it crosses process and Ray boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("done", "diverged", "failed")


@dataclass
class RunResult:
    run_id: str
    spec: dict[str, Any]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    curves: list[tuple[int, str, float]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    steps_done: int = 0
    wall_time_s: float = 0.0
    steps_per_s: float = 0.0
    diverged_step: int | None = None
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
