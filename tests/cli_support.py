"""Running ``creativeflow`` as a user does: a separate process, its exit code and what it printed.

Each run starts in a directory of its own (no ``.env`` of the developer's is read, and the local
stack's ``.devstack/`` lands there) with the test's environment plus the given settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# what a run may take at most before the test gives up on it (a hang guard, not a measurement)
GIVE_UP_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def environment(**settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "creativeflow", *args]


def run_cli(*args: str, cwd: Path, **settings: str) -> Outcome:
    done = subprocess.run(
        command(*args),
        cwd=cwd,
        env=environment(**settings),
        capture_output=True,
        text=True,
        timeout=GIVE_UP_SECONDS,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)
