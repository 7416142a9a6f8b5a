"""What production installs: the product's wheel holds the product alone. The Odoo emulator, the
n8n simulator, the notification sink and the fake credits ship in the local stack's own
distribution (``devstack/``), which adds ``creativeflow dev`` through an entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
_UNBUILT = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")


def _build(project: Path, into: Path) -> list[str]:
    """Build from a copy of the project's sources: a ``build/`` left in the working tree by an
    earlier build would otherwise hand its stale modules to this one."""
    source = into / "source"
    shutil.copytree(project / "src", source / "src", ignore=_UNBUILT)
    for name in ("pyproject.toml", "README.md"):
        if (project / name).exists():
            shutil.copy(project / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(into)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = into.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _build(ROOT, tmp_path_factory.mktemp("product"))


def test_the_product_wheel_holds_no_local_stack_and_no_fake(product_wheel: list[str]) -> None:
    modules = [name for name in product_wheel if name.endswith(".py")]
    assert "creativeflow/api/app.py" in modules
    assert "creativeflow/adapters/tracking/migrations/env.py" in modules
    stray = [
        name
        for name in modules
        if not name.startswith("creativeflow/")
        or any(word in name for word in ("devstack", "emulator", "simulator", "sink", "fake"))
    ]
    assert stray == []


def test_the_product_wheel_keeps_its_data_files(product_wheel: list[str]) -> None:
    assert "creativeflow/py.typed" in product_wheel
    assert "creativeflow/schemas/generation-job.v1.json" in product_wheel
    assert "creativeflow/schemas/generation-job.v2.json" in product_wheel
    assert "creativeflow/schemas/generation-cancel.v1.json" in product_wheel
    assert "creativeflow/adapters/tracking/migrations/script.py.mako" in product_wheel


def test_the_local_stack_wheel_carries_the_emulator_seed_and_the_dev_command(
    tmp_path: Path,
) -> None:
    names = _build(ROOT / "devstack", tmp_path)
    assert "creativeflow_devstack/odoo_emulator/seed.json" in names
    assert "creativeflow_devstack/fake_credits.py" in names
    assert not [name for name in names if name.startswith("creativeflow/")]
    (entry_points,) = [name for name in names if name.endswith("entry_points.txt")]
    text = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).read(entry_points).decode()
    assert "[creativeflow.cli]" in text
    assert "devstack = creativeflow_devstack.cli" in text
