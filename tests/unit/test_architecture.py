"""The folders tell the architecture, and the imports keep it: dependencies point inward.

- ``domain/`` imports no framework, driver or client, and nothing outside the domain;
- ``services/`` (the use cases) import the domain and their ports, never an adapter, the API,
  the composition root or the local stack;
- ``adapters/`` never import the API, the composition root or the local stack.

Checked on the source, imports under ``TYPE_CHECKING`` included: a type-only arrow outward is
still an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "src" / "creativeflow"

FRAMEWORKS = (
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "alembic",
    "psycopg2",
    "pika",
    "httpx",
    "odoorpc",
    "jwt",
    "prometheus_client",
    "uvicorn",
)
RULES = {
    "domain": ("creativeflow.", *FRAMEWORKS),
    "services": (
        "creativeflow.adapters",
        "creativeflow.api",
        "creativeflow.bootstrap",
        "creativeflow_devstack",
        "creativeflow.observability",
        *FRAMEWORKS,
    ),
    "adapters": ("creativeflow.api", "creativeflow.bootstrap", "creativeflow_devstack"),
}
# what a layer may import even though a rule above names its prefix
ALLOWED = {"domain": ("creativeflow.domain",)}


def _imports(path: Path, root: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.append(node.module)
    return found


def _violations(layer: str, root: Path = PACKAGE) -> list[str]:
    forbidden, allowed = RULES[layer], ALLOWED.get(layer, ())
    found = []
    for path in sorted((root / layer).rglob("*.py")):
        for name in _imports(path, root):
            if any(name == a or name.startswith(a + ".") for a in allowed):
                continue
            if any(
                name == f or name.startswith(f if f.endswith(".") else f + ".") for f in forbidden
            ):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(RULES))
def test_dependencies_point_inward(layer: str) -> None:
    assert _violations(layer) == []


def test_the_check_sees_each_spelling_of_an_outward_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a planted module with outward imports is caught, whether the
    import is absolute, relative, type-only or of a framework."""
    services = tmp_path / "creativeflow" / "services"
    services.mkdir(parents=True)
    (services / "probe.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from creativeflow.adapters.tracking.database import TrackingDatabase\n"
        "from ..api import schemas\n"
        "import sqlalchemy.orm\n"
        "from .ports import Tracking\n"
        "if TYPE_CHECKING:\n"
        "    from creativeflow.bootstrap import Container\n"
    )
    assert _violations("services", tmp_path / "creativeflow") == [
        "services/probe.py imports creativeflow.adapters.tracking.database",
        "services/probe.py imports creativeflow.api",
        "services/probe.py imports sqlalchemy.orm",
        "services/probe.py imports creativeflow.bootstrap",
    ]


def _local_stack_imports(root: Path = PACKAGE) -> list[str]:
    return [
        f"{path.relative_to(root)} imports {name}"
        for path in sorted(root.rglob("*.py"))
        for name in _imports(path, root)
        if name == "creativeflow_devstack" or name.startswith("creativeflow_devstack.")
    ]


def test_the_product_never_imports_the_local_stack() -> None:
    """Production installs ``creativeflow`` alone: the emulator, the simulator, the sink and the
    fake credits live in ``creativeflow_devstack``, which reaches the command line through an
    entry point, never through an import from the product."""
    assert _local_stack_imports() == []


def test_the_local_stack_check_sees_a_planted_import(tmp_path: Path) -> None:
    package = tmp_path / "creativeflow"
    package.mkdir()
    (package / "cli.py").write_text("from creativeflow_devstack.stack import run_local_stack\n")
    assert _local_stack_imports(package) == ["cli.py imports creativeflow_devstack.stack"]
