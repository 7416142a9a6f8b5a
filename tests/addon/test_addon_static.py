"""Static checks of the Odoo addon ``odoo_contracts/creativeflow_credits``.

CI runs no Odoo server, so the addon's own ``TransactionCase`` tests cannot run here. These checks
catch, without Odoo, what would make a real Odoo 18.0 refuse to install the addon or what would
break the credit contract (``odoo_contracts/README.md``): Python that does not compile, a manifest
Odoo cannot read or that lists missing files, XML that does not parse or refers to records that do
not exist (yet), access rights for unknown models or groups, models without access rights, view
syntax Odoo 18 rejects, views naming unknown fields, and a service whose public methods, arguments
or refusal codes differ from the contract.

To run the checks against another copy of the addon, set ``CREATIVEFLOW_ADDON_DIR`` to its path.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ADDON_DIR = REPO_ROOT / "odoo_contracts" / "creativeflow_credits"
CONTRACT_README = REPO_ROOT / "odoo_contracts" / "README.md"
MODULE = "creativeflow_credits"
SERVICE_MODEL = "creativeflow.credit.service"
LEDGER_MODEL = "creativeflow.credit.ledger"
ACCOUNT_MODEL = "creativeflow.credit.account"
ASSET_MODEL = "creativeflow.generated.asset"

REQUIRED_MANIFEST_KEYS = {
    "name",
    "version",
    "license",
    "category",
    "summary",
    "author",
    "depends",
    "data",
    "demo",
    "installable",
    "application",
}
MANIFEST_VERSION = re.compile(r"^18\.0\.\d+\.\d+\.\d+$")
ACL_FILE = "security/ir.model.access.csv"
ACL_HEADER = [
    "id",
    "name",
    "model_id:id",
    "group_id:id",
    "perm_read",
    "perm_write",
    "perm_create",
    "perm_unlink",
]
REFUSAL_CODES = (
    "unknown_account",
    "invalid_request",
    "tier_forbids",
    "insufficient_credits",
    "request_conflict",
    "nothing_to_refund",
    "asset_conflict",
    "unknown_debit",
)
LOCK_QUERY = "SELECT id FROM creativeflow_credit_account WHERE id = %s FOR UPDATE"
MAGIC_FIELDS = {"id", "display_name", "create_date", "create_uid", "write_date", "write_uid"}
SUBVIEW_TAGS = {"list", "tree", "form", "kanban"}
MODEL_KINDS = {"Model", "AbstractModel", "TransientModel"}
EVAL_REF = re.compile(r"""\bref\(\s*['"]([^'"]+)['"]\s*\)""")
PERCENT_REF = re.compile(r"%\(([^)]+)\)[ds]")
GROUP_BY = re.compile(r"""['"]group_by['"]\s*:\s*['"]([\w.]+)(?::\w+)?['"]""")


# --------------------------------------------------------------------------------------------
# What the addon holds, read without Odoo


@dataclass
class ModelInfo:
    """An Odoo model class as the addon's Python source defines it."""

    name: str
    kind: str
    path: Path
    node: ast.ClassDef
    fields: dict[str, str | None] = field(default_factory=dict)  # name -> comodel, if relational
    methods: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def addon() -> Path:
    path = Path(os.environ.get("CREATIVEFLOW_ADDON_DIR") or DEFAULT_ADDON_DIR).resolve()
    assert (path / "__manifest__.py").is_file(), f"no Odoo addon (no __manifest__.py) at {path}"
    return path


@cache
def read_manifest(addon: Path) -> dict[str, Any]:
    manifest = ast.literal_eval((addon / "__manifest__.py").read_text(encoding="utf-8"))
    assert isinstance(manifest, dict), "__manifest__.py must be a dict literal"
    return manifest


def manifest_files(addon: Path) -> list[str]:
    """Data files in the order Odoo loads them: ``data`` first, then ``demo``."""
    manifest = read_manifest(addon)
    return [*manifest.get("data", []), *manifest.get("demo", [])]


def python_files(addon: Path) -> list[Path]:
    return sorted(addon.rglob("*.py"))


def xml_files(addon: Path) -> list[Path]:
    return sorted(addon.rglob("*.xml"))


def relative(addon: Path, path: Path) -> str:
    return path.relative_to(addon).as_posix()


def base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def constant_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def class_assignments(node: ast.ClassDef) -> dict[str, ast.expr]:
    assigned: dict[str, ast.expr] = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    assigned[target.id] = statement.value
    return assigned


def field_comodel(call: ast.Call) -> str | None:
    if base_name(call.func) not in {"Many2one", "One2many", "Many2many"}:
        return None
    for keyword in call.keywords:
        if keyword.arg == "comodel_name":
            return constant_str(keyword.value)
    return constant_str(call.args[0]) if call.args else None


def is_fields_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "fields"
    )


@cache
def model_index(addon: Path) -> dict[str, ModelInfo]:
    """Every model a ``_name`` in ``models/`` or ``wizards/`` defines, by name."""
    models: dict[str, ModelInfo] = {}
    for folder in ("models", "wizards"):
        for path in sorted((addon / folder).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                kinds = [base_name(base) for base in node.bases if base_name(base) in MODEL_KINDS]
                name = constant_str(class_assignments(node).get("_name"))
                if not kinds or name is None:
                    continue
                info = ModelInfo(name=name, kind=kinds[0], path=path, node=node)
                for attribute, value in class_assignments(node).items():
                    if is_fields_call(value):
                        assert isinstance(value, ast.Call)
                        info.fields[attribute] = field_comodel(value)
                info.methods = {
                    statement.name
                    for statement in node.body
                    if isinstance(statement, ast.FunctionDef)
                }
                models[name] = info
    return models


def model_xmlid(model_name: str) -> str:
    return "model_" + model_name.replace(".", "_")


def split_xmlid(reference: str) -> tuple[str, str]:
    module, _dot, name = reference.strip().rpartition(".")
    return module or MODULE, name


def loadable_elements(root: ET.Element) -> Iterator[ET.Element]:
    """The elements Odoo loads one by one, in document order (``<data>`` only wraps them)."""
    for child in root:
        if child.tag == "data":
            yield from loadable_elements(child)
        elif isinstance(child.tag, str):
            yield child


def group_references(value: str) -> list[str]:
    return [part.strip().lstrip("!-") for part in value.split(",") if part.strip()]


def element_references(element: ET.Element) -> list[str]:
    """Every XML id an element and its descendants refer to."""
    found: list[str] = []
    for node in element.iter():
        for attribute, value in node.attrib.items():
            if attribute == "ref" and node.tag in {"field", "value"}:
                found.append(value)
            elif attribute == "eval":
                found += EVAL_REF.findall(value)
            elif attribute == "groups":
                found += group_references(value)
            elif node.tag == "menuitem" and attribute in {"parent", "action"}:
                found.append(value)
            found += PERCENT_REF.findall(value)
        found += PERCENT_REF.findall(node.text or "")
    return found


def defined_id(element: ET.Element) -> str | None:
    if element.tag in {"record", "menuitem", "template"} and element.get("id"):
        return split_xmlid(element.attrib["id"])[1]
    return None


def acl_rows(addon: Path) -> list[dict[str, str]]:
    with (addon / ACL_FILE).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def security_group_ids(addon: Path) -> set[str]:
    ids: set[str] = set()
    for path in sorted((addon / "security").glob("*.xml")):
        for element in loadable_elements(ET.parse(path).getroot()):
            if element.tag == "record" and element.get("model") == "res.groups":
                ids.add(split_xmlid(element.attrib["id"])[1])
    return ids


def view_records(addon: Path) -> Iterator[tuple[str, str, ET.Element]]:
    """(file, view id, arch) of every ``ir.ui.view`` record."""
    for path in xml_files(addon):
        for element in loadable_elements(ET.parse(path).getroot()):
            if element.tag == "record" and element.get("model") == "ir.ui.view":
                arch = element.find("field[@name='arch']")
                if arch is not None:
                    yield relative(addon, path), element.get("id", "?"), arch


def record_field(element: ET.Element, name: str) -> str | None:
    found = element.find(f"field[@name='{name}']")
    return None if found is None else (found.text or "").strip()


def service_class(addon: Path) -> ast.ClassDef:
    info = model_index(addon).get(SERVICE_MODEL)
    assert info is not None, f"no class with _name = {SERVICE_MODEL!r} in models/ or wizards/"
    assert info.path.name == "credit_service.py", (
        f"{SERVICE_MODEL} is defined in {info.path.name}, expected models/credit_service.py"
    )
    return info.node


def module_constants(tree: ast.Module) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            # Not every constant is a literal (re.compile(...), a call, ...): those are skipped.
            if isinstance(target, ast.Name):
                with contextlib.suppress(ValueError, TypeError, SyntaxError):
                    constants[target.id] = ast.literal_eval(statement.value)
    return constants


def contract_signatures() -> dict[str, ast.arguments]:
    """The public methods of the contract README, with their arguments and defaults."""
    text = CONTRACT_README.read_text(encoding="utf-8")
    section = text.split("\n## Public methods", 1)[1].split("\n## ", 1)[0]
    signatures: dict[str, ast.arguments] = {}
    for match in re.finditer(r"^### `(\w+)\((.*)\)`", section, flags=re.MULTILINE):
        name, arguments = match.groups()
        function = ast.parse(f"def {name}(self, {arguments}): pass").body[0]
        assert isinstance(function, ast.FunctionDef)
        signatures[name] = function.args
    return signatures


def positional_arguments(
    arguments: ast.arguments, constants: dict[str, Any]
) -> list[tuple[str, Any]]:
    """[(name, default or the marker 'required')] after ``self``."""
    names = [argument.arg for argument in arguments.args][1:]
    defaults: list[Any] = []
    for default in arguments.defaults:
        if isinstance(default, ast.Name) and default.id in constants:
            defaults.append(constants[default.id])
        else:
            defaults.append(ast.literal_eval(default))
    padded = ["required"] * (len(names) - len(defaults)) + defaults
    return list(zip(names, padded, strict=True))


def is_api_model(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(decorator, ast.Attribute)
        and decorator.attr == "model"
        and base_name(decorator.value) == "api"
        for decorator in function.decorator_list
    )


def sql_constraint_texts(info: ModelInfo) -> list[str]:
    value = class_assignments(info.node).get("_sql_constraints")
    assert value is not None, f"{info.name} has no _sql_constraints"
    return [" ".join(str(entry[1]).split()) for entry in ast.literal_eval(value)]


# --------------------------------------------------------------------------------------------
# Python


def test_every_python_file_compiles(addon: Path) -> None:
    failures: list[str] = []
    for path in python_files(addon):
        try:
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        except SyntaxError as error:
            failures.append(f"{relative(addon, path)}:{error.lineno}: {error.msg}")
    assert python_files(addon), f"no Python file under {addon}"
    assert not failures, "Python files that do not compile:\n" + "\n".join(failures)


def test_every_python_module_is_imported_by_its_package(addon: Path) -> None:
    missing: list[str] = []
    for init in sorted(addon.rglob("__init__.py")):
        package = init.parent
        imported: set[str] = set()
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
                imported |= {alias.name for alias in node.names}
        wanted = {
            path.stem
            for path in package.glob("*.py")
            if path.name not in {"__init__.py", "__manifest__.py"}
        }
        wanted |= {path.parent.name for path in package.glob("*/__init__.py")}
        if package.name == "tests":
            wanted = {name for name in wanted if name.startswith("test_")}
        if package == addon:
            wanted.discard("tests")  # Odoo imports an addon's tests itself
        missing += [f"{relative(addon, init)} does not import {name}" for name in wanted - imported]
    assert not missing, "modules Odoo would never load:\n" + "\n".join(sorted(missing))


# --------------------------------------------------------------------------------------------
# Manifest


def test_manifest_is_a_literal_with_the_required_keys(addon: Path) -> None:
    try:
        manifest = read_manifest(addon)
    except (ValueError, SyntaxError) as error:
        pytest.fail(f"__manifest__.py is not a Python literal: {error}")
    assert isinstance(manifest, dict), "__manifest__.py must be a dict literal"
    missing = REQUIRED_MANIFEST_KEYS - manifest.keys()
    assert not missing, f"__manifest__.py lacks {sorted(missing)}"
    assert manifest["license"] == "LGPL-3", f"license is {manifest['license']!r}, expected LGPL-3"
    assert manifest["installable"] is True, "the addon must be installable"
    assert manifest["application"] is True, "the addon must be an application"


def test_manifest_version_targets_odoo_18(addon: Path) -> None:
    version = read_manifest(addon)["version"]
    assert MANIFEST_VERSION.match(version), (
        f"version {version!r} does not match 18.0.x.y.z (OCA versions for Odoo 18.0)"
    )


def test_manifest_depends_on_base_only(addon: Path) -> None:
    depends = read_manifest(addon)["depends"]
    assert depends == ["base"], f"depends is {depends!r}, expected exactly ['base']"


def test_manifest_lists_only_existing_files(addon: Path) -> None:
    missing = [name for name in manifest_files(addon) if not (addon / name).is_file()]
    assert not missing, f"__manifest__.py lists files that do not exist: {missing}"


def test_manifest_lists_every_data_file(addon: Path) -> None:
    listed = set(manifest_files(addon))
    data_files = {
        relative(addon, path)
        for path in [*addon.rglob("*.xml"), *addon.rglob("*.csv")]
        if path.relative_to(addon).parts[0] not in {"tests", "static"}
    }
    orphans = sorted(data_files - listed)
    assert not orphans, f"data files __manifest__.py does not list (never loaded): {orphans}"


def test_manifest_loads_security_first(addon: Path) -> None:
    data = read_manifest(addon)["data"]
    assert len(data) >= 2, f"data lists too few files: {data}"
    assert data[0].startswith("security/") and data[0].endswith(".xml"), (
        f"the security groups XML must load first, found {data[0]!r}"
    )
    assert data[1] == ACL_FILE, f"{ACL_FILE} must load right after the groups, found {data[1]!r}"
    late_security = [name for name in data[2:] if name.startswith("security/")]
    assert not late_security, f"security files load after views: {late_security}"
    assert all(not name.startswith("demo/") for name in data), "demo files belong under 'demo'"


# --------------------------------------------------------------------------------------------
# XML


def test_every_xml_file_parses(addon: Path) -> None:
    failures: list[str] = []
    for path in xml_files(addon):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as error:
            failures.append(f"{relative(addon, path)}: {error}")
            continue
        if root.tag not in {"odoo", "openerp"}:
            failures.append(f"{relative(addon, path)}: root is <{root.tag}>, expected <odoo>")
    assert xml_files(addon), f"no XML file under {addon}"
    assert not failures, "XML files Odoo cannot load:\n" + "\n".join(failures)


def test_xml_references_are_defined_before_use(addon: Path) -> None:
    """A ``ref``, ``ref('...')``, ``%(...)d``, ``groups``, menu parent or action must name a
    record of this addon loaded earlier (Odoo loads files in manifest order, records in document
    order), a model of the addon (``model_...``), or a record of ``base``."""
    defined = {model_xmlid(name) for name in model_index(addon)}
    failures: list[str] = []
    for name in manifest_files(addon):
        path = addon / name
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            elements = [
                (row.get("id", "?"), [row[key] for key in row if key and key.endswith(":id")])
                for row in rows
            ]
            for row_id, references in elements:
                for reference in references:
                    failures += check_reference(name, row_id, reference, defined)
                defined.add(split_xmlid(row_id)[1])
            continue
        if path.suffix != ".xml" or not path.is_file():
            continue
        for element in loadable_elements(ET.parse(path).getroot()):
            label = element.get("id") or f"<{element.tag}>"
            for reference in element_references(element):
                failures += check_reference(name, label, reference, defined)
            if (record_id := defined_id(element)) is not None:
                defined.add(record_id)
    assert not failures, "references Odoo cannot resolve at install:\n" + "\n".join(failures)


def check_reference(file: str, where: str, reference: str, defined: set[str]) -> list[str]:
    if not reference.strip():
        return []
    module, name = split_xmlid(reference)
    if module == "base":
        return []
    if module != MODULE:
        return [f"{file} {where}: {reference!r} belongs to neither {MODULE} nor base"]
    if name not in defined:
        return [f"{file} {where}: {reference!r} is not defined (or only later)"]
    return []


def test_views_use_odoo_18_syntax(addon: Path) -> None:
    failures: list[str] = []
    for path in xml_files(addon):
        for node in ET.parse(path).getroot().iter():
            where = f"{relative(addon, path)} <{node.tag}>"
            if node.tag == "tree":
                failures.append(f"{where}: Odoo 18 calls it <list>")
            for attribute in ("attrs", "states"):
                if attribute in node.attrib:
                    failures.append(f"{where}: {attribute}= was removed in Odoo 17")
            view_mode = node.text if node.get("name") == "view_mode" else None
            if node.tag == "field" and "tree" in (view_mode or "").split(","):
                failures.append(f"{where}: view_mode names 'tree', Odoo 18 says 'list'")
    assert not failures, "view syntax Odoo 18 rejects:\n" + "\n".join(failures)


def test_views_name_existing_models_fields_and_methods(addon: Path) -> None:
    models = model_index(addon)
    failures: list[str] = []

    def walk(element: ET.Element, model: str, where: str) -> None:
        info = models.get(model)
        if info is None:
            failures.append(f"{where}: model {model!r} is not defined by the addon")
            return
        known = MAGIC_FIELDS | info.fields.keys()
        for child in element:
            name = child.get("name")
            if child.tag == "field" and name:
                if name not in known:
                    failures.append(f"{where}: {model} has no field {name!r}")
                    continue
                for sub in child:
                    if sub.tag in SUBVIEW_TAGS:
                        comodel = info.fields.get(name)
                        walk(sub, comodel or f"<comodel of {name}>", where)
                continue
            is_object_button = child.tag == "button" and child.get("type") == "object"
            if is_object_button and name and name not in info.methods:
                failures.append(f"{where}: {model} has no method {name!r} for its button")
            if child.tag == "filter":
                grouped = GROUP_BY.findall(child.get("context", ""))
                dated = [child.get("date")] if child.get("date") else []
                for field_name in grouped + dated:
                    if field_name not in known:
                        failures.append(f"{where}: filter on unknown field {field_name!r}")
            if child.tag == "label" and child.get("for") and child.get("for") not in known:
                failures.append(f"{where}: label for unknown field {child.get('for')!r}")
            walk(child, model, where)

    for path in xml_files(addon):
        for element in loadable_elements(ET.parse(path).getroot()):
            if element.tag != "record" or element.get("model") != "ir.ui.view":
                continue
            model = record_field(element, "model") or "?"
            arch = element.find("field[@name='arch']")
            where = f"{relative(addon, path)} {element.get('id')}"
            if arch is None or len(arch) != 1:
                failures.append(f"{where}: a view needs exactly one root element in its arch")
                continue
            walk(arch[0], model, where)
    assert not failures, "views Odoo would refuse:\n" + "\n".join(failures)


def test_actions_open_models_of_the_addon(addon: Path) -> None:
    models = model_index(addon)
    failures: list[str] = []
    for path in xml_files(addon):
        for element in loadable_elements(ET.parse(path).getroot()):
            if element.tag == "record" and element.get("model") == "ir.actions.act_window":
                res_model = record_field(element, "res_model")
                if res_model not in models:
                    failures.append(f"{element.get('id')}: res_model {res_model!r} is unknown")
    assert not failures, "window actions on unknown models:\n" + "\n".join(failures)


# --------------------------------------------------------------------------------------------
# Access rights


def test_acl_file_has_the_odoo_header(addon: Path) -> None:
    with (addon / ACL_FILE).open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    assert header == ACL_HEADER, f"{ACL_FILE} header is {header}, expected {ACL_HEADER}"


def test_acl_rows_name_addon_models_and_security_groups(addon: Path) -> None:
    model_ids = {model_xmlid(name) for name in model_index(addon)}
    groups = security_group_ids(addon)
    failures: list[str] = []
    seen: set[str] = set()
    for row in acl_rows(addon):
        row_id = row["id"]
        if not row_id.startswith("access_"):
            failures.append(f"{row_id}: an ACL id starts with 'access_' (OCA naming)")
        if row_id in seen:
            failures.append(f"{row_id}: duplicate ACL id")
        seen.add(row_id)
        model_module, model_id = split_xmlid(row["model_id:id"])
        if model_module != MODULE or model_id not in model_ids:
            failures.append(f"{row_id}: model {row['model_id:id']!r} is not a model of the addon")
        group_module, group_id = split_xmlid(row["group_id:id"] or "")
        if group_module != MODULE or group_id not in groups:
            failures.append(
                f"{row_id}: group {row['group_id:id']!r} is not defined in security/*.xml"
            )
        for permission in ACL_HEADER[4:]:
            if row[permission] not in {"0", "1"}:
                failures.append(f"{row_id}: {permission} is {row[permission]!r}, not 0 or 1")
    assert acl_rows(addon), f"{ACL_FILE} has no rows"
    assert not failures, f"{ACL_FILE} rows Odoo would refuse:\n" + "\n".join(failures)


def test_every_stored_model_has_access_rights(addon: Path) -> None:
    covered = {split_xmlid(row["model_id:id"])[1] for row in acl_rows(addon)}
    uncovered = [
        f"{info.name} ({info.kind})"
        for info in model_index(addon).values()
        # Odoo 18 wants access rights on transient models too; abstract ones have no table.
        if info.kind != "AbstractModel" and model_xmlid(info.name) not in covered
    ]
    assert not uncovered, f"models nobody but the superuser could use: {uncovered}"


def test_no_access_right_writes_or_deletes_ledger_entries(addon: Path) -> None:
    ledger = model_xmlid(LEDGER_MODEL)
    rows = [row for row in acl_rows(addon) if split_xmlid(row["model_id:id"])[1] == ledger]
    assert rows, f"no access right on {LEDGER_MODEL}"
    mutable = [row["id"] for row in rows if "1" in (row["perm_write"], row["perm_unlink"])]
    assert not mutable, f"ledger entries are immutable, yet these rows write or delete: {mutable}"


def test_generated_assets_are_read_by_auditors_and_managers_and_written_by_no_group(
    addon: Path,
) -> None:
    """The credit service records an asset in superuser mode; every group only reads."""
    asset = model_xmlid(ASSET_MODEL)
    rows = [row for row in acl_rows(addon) if split_xmlid(row["model_id:id"])[1] == asset]
    assert sorted(row["group_id:id"] for row in rows) == ["group_auditor", "group_manager"]
    for row in rows:
        permissions = [row[name] for name in ACL_HEADER[4:]]
        assert permissions == ["1", "0", "0", "0"], f"{row['id']}: {permissions}"


# --------------------------------------------------------------------------------------------
# The credit contract


def test_service_public_methods_are_the_contracts(addon: Path) -> None:
    expected = set(contract_signatures())
    assert len(expected) == 8, f"the contract README lists {sorted(expected)}, expected eight"
    methods = [
        statement
        for statement in service_class(addon).body
        if isinstance(statement, ast.FunctionDef) and not statement.name.startswith("_")
    ]
    public = {method.name for method in methods}
    assert public == expected, (
        f"public methods of {SERVICE_MODEL}: {sorted(public)}; the contract lists "
        f"{sorted(expected)} (anything public is callable over RPC)"
    )
    not_model = [method.name for method in methods if not is_api_model(method)]
    assert not not_model, f"service methods must be @api.model (called without ids): {not_model}"


def test_service_arguments_match_the_contract(addon: Path) -> None:
    source = (addon / "models" / "credit_service.py").read_text(encoding="utf-8")
    constants = module_constants(ast.parse(source))
    methods = {
        statement.name: statement
        for statement in service_class(addon).body
        if isinstance(statement, ast.FunctionDef)
    }
    failures: list[str] = []
    for name, contract_arguments in contract_signatures().items():
        if name not in methods:
            continue  # reported by test_service_public_methods_are_the_contracts
        actual = positional_arguments(methods[name].args, constants)
        expected = positional_arguments(contract_arguments, {})
        if actual != expected:
            failures.append(f"{name}: arguments {actual}, contract says {expected}")
    assert not failures, "service signatures differ from the contract:\n" + "\n".join(failures)


def test_service_source_holds_every_refusal_code(addon: Path) -> None:
    tree = ast.parse((addon / "models" / "credit_service.py").read_text(encoding="utf-8"))
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    missing = [code for code in REFUSAL_CODES if code not in strings]
    assert not missing, f"refusal codes of the contract the service never returns: {missing}"
    readme = CONTRACT_README.read_text(encoding="utf-8")
    undocumented = [code for code in REFUSAL_CODES if f"`{code}`" not in readme]
    assert not undocumented, f"codes checked here but absent from the contract: {undocumented}"


def contract_tier_reasons() -> list[str]:
    """The tier check's reasons, in the order of the README's table."""
    text = CONTRACT_README.read_text(encoding="utf-8")
    table = text.split("Tier check, in this order", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)


def test_service_checks_every_tier_rule_in_the_documented_order(addon: Path) -> None:
    reasons = contract_tier_reasons()
    assert "too_many_requests_in_flight" in reasons, f"README tier reasons: {reasons}"
    assert reasons[-1] == "too_many_requests_in_flight", "the cap on unfinished requests is last"
    source = (addon / "models" / "credit_service.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    missing = [reason for reason in reasons if reason not in strings]
    assert not missing, f"tier reasons of the contract the service never gives: {missing}"
    positions = [source.index(f'"{reason}"') for reason in reasons]
    assert positions == sorted(positions), (
        f"the service checks the tier rules out of the README's order {reasons}"
    )


def test_service_reads_the_optional_requests_in_flight_of_the_spec(addon: Path) -> None:
    tree = ast.parse((addon / "models" / "credit_service.py").read_text(encoding="utf-8"))
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert {"requests_in_flight", "max_requests_in_flight"} <= strings
    constants = module_constants(tree)
    assert "requests_in_flight" not in constants.get("SPEC_KEYS", ()), (
        "requests_in_flight is optional: it must not be a required spec key"
    )


def test_balance_movements_lock_the_account_row(addon: Path) -> None:
    wanted = " ".join(LOCK_QUERY.split()).lower()
    queries: list[str] = []
    for path in sorted((addon / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = constant_str(node) if isinstance(node, ast.expr) else None
            if text and " ".join(text.split()).lower() == wanted:
                queries.append(relative(addon, path))
    assert queries, f"no model issues the row lock {LOCK_QUERY!r}"


def test_ledger_and_account_carry_their_database_constraints(addon: Path) -> None:
    models = model_index(addon)

    def compact(model: str) -> list[str]:
        return [text.replace(" ", "").lower() for text in sql_constraint_texts(models[model])]

    ledger = compact(LEDGER_MODEL)
    assert "unique(request_id,action,operation)" in ledger, (
        f"{LEDGER_MODEL} needs UNIQUE(request_id, action, operation), has {ledger}"
    )
    account = compact(ACCOUNT_MODEL)
    assert "check(balance>=0)" in account, (
        f"{ACCOUNT_MODEL} needs CHECK(balance >= 0), has {account}"
    )
    assets = compact(ASSET_MODEL)
    assert "unique(request_id)" in assets, f"{ASSET_MODEL} needs UNIQUE(request_id), has {assets}"


@pytest.mark.parametrize("model", [LEDGER_MODEL, ASSET_MODEL])
def test_ledger_and_assets_refuse_write_and_unlink(addon: Path, model: str) -> None:
    info = model_index(addon)[model]
    assert "write" in info.methods, f"{model} must override write to refuse it"
    unlink_guards = [
        statement.name
        for statement in info.node.body
        if isinstance(statement, ast.FunctionDef)
        and (
            statement.name == "unlink"
            or any(
                isinstance(decorator, ast.Call) and base_name(decorator.func) == "ondelete"
                for decorator in statement.decorator_list
            )
        )
    ]
    assert unlink_guards, f"{model} must refuse unlink (override or @api.ondelete)"


def _records(path: Path, model: str) -> list[ET.Element]:
    return [r for r in ET.parse(path).getroot().iter("record") if r.get("model") == model]


def test_the_shipped_technical_user_is_in_the_orchestrator_group_alone_with_no_password(
    addon: Path,
) -> None:
    """Internal User would let it read every user's login and e-mail and every partner over
    RPC; a password makes each API-key login check 600,000 pbkdf2 rounds first."""
    [user] = [
        r
        for r in _records(addon / "demo/creativeflow_credits_demo.xml", "res.users")
        if r.findtext("field[@name='login']") == "orchestrator"
    ]
    groups = user.find("field[@name='groups_id']")
    assert groups is not None
    assert groups.get("eval") == "[(6, 0, [ref('group_orchestrator')])]"
    assert user.find("field[@name='password']") is None
    assert user.find("field[@name='new_password']") is None
    init = (REPO_ROOT / "deploy/odoo/odoo-init.sh").read_text()
    assert "base.group_user" not in init.replace('has_group("base.group_user")', "")
    assert "SET password = NULL" in init and "res_users_apikeys" in init
    assert "ODOO_ORCHESTRATOR_PASSWORD" not in init and ".password =" not in init


def _orchestrator_of_the_addon_tests(addon: Path) -> dict[str, Any]:
    """The values ``tests/common.py`` creates its orchestrator user with."""
    tree = ast.parse((addon / "tests/common.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "orchestrator" for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            call = node.value
            assert isinstance(call.func, ast.Attribute) and call.func.attr == "create", (
                "the addon tests' orchestrator is made with res.users.create, as shipped "
                "(new_test_user would give it a password)"
            )
            [values] = call.args
            assert isinstance(values, ast.Dict)
            return {
                k.value: ast.unparse(v)
                for k, v in zip(values.keys, values.values, strict=True)
                if isinstance(k, ast.Constant)
            }
    raise AssertionError("tests/common.py makes no orchestrator user")


def test_the_addon_tests_use_the_technical_user_as_shipped(addon: Path) -> None:
    values = _orchestrator_of_the_addon_tests(addon)
    assert "password" not in values and "new_password" not in values
    assert values["groups_id"] == (
        "[(6, 0, [cls.env.ref('creativeflow_credits.group_orchestrator').id])]"
    )


def test_the_orchestrator_group_has_no_access_rights_and_implies_no_internal_user(
    addon: Path,
) -> None:
    """Everything the contract needs goes through the service, in superuser mode; a read right
    on accounts would show every balance and customer name over RPC."""
    security = addon / "security/creativeflow_credits_security.xml"
    [group] = [r for r in _records(security, "res.groups") if r.get("id") == "group_orchestrator"]
    assert group.find("field[@name='implied_ids']") is None
    granted = [row["id"] for row in acl_rows(addon) if row["group_id:id"] == "group_orchestrator"]
    assert granted == []
    acl = (addon / ACL_FILE).read_text()
    assert "res_partner" not in acl and "res_users" not in acl


def test_the_orchestrator_rule_keeps_a_share_user_to_its_own_user_record_only(
    addon: Path,
) -> None:
    """Base lets every user read res.users and shows every internal user to anyone: the rule
    keeps the technical user (a share user) to itself, and binds no internal member."""
    security = addon / "security/creativeflow_credits_security.xml"
    [rule] = [
        r for r in _records(security, "ir.rule") if r.get("id") == "rule_orchestrator_own_user"
    ]
    assert rule.find("field[@name='model_id']").get("ref") == "base.model_res_users"  # type: ignore[union-attr]
    assert rule.find("field[@name='groups']").get("eval") == "[(4, ref('group_orchestrator'))]"  # type: ignore[union-attr]
    domain = rule.findtext("field[@name='domain_force']")
    assert domain is not None
    code = compile(domain, "domain_force", "eval")
    assert set(code.co_names) == {"user", "id", "share"}  # nothing but the user's own fields

    class User:
        def __init__(self, uid: int, share: bool) -> None:
            self.id, self.share = uid, share

    assert eval(code, {"__builtins__": {}}, {"user": User(7, True)}) == [("id", "=", 7)]
    assert eval(code, {"__builtins__": {}}, {"user": User(7, False)}) == []


def test_the_ledger_pivot_sums_a_signed_amount(addon: Path) -> None:
    views = ET.parse(addon / "views/credit_ledger_views.xml").getroot()
    [pivot] = list(views.iter("pivot"))
    measures = [f.get("name") for f in pivot.iter("field") if f.get("type") == "measure"]
    assert measures == ["balance_change"]
    source = (addon / "models/credit_ledger.py").read_text()
    assert re.search(r"balance_change = fields\.Integer\([^)]*store=True", source, re.S)
    assert '-entry.amount if entry.operation == "debit"' in source


def test_the_addon_keeps_the_action_grammar_of_domain_actions(addon: Path) -> None:
    """The addon runs inside Odoo and cannot import the service: its own ``ACTION_PATTERN`` must
    be the grammar of ``creativeflow.domain.actions`` character for character."""
    from creativeflow.domain.actions import PATTERN

    tree = ast.parse((addon / "models/credit_service.py").read_text())
    patterns = [
        node.value.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "ACTION_PATTERN" for t in node.targets)
        and isinstance(node.value, ast.Call)
        and node.value.args
        and isinstance(node.value.args[0], ast.Constant)
    ]
    assert patterns == [PATTERN]


def test_the_rule_table_is_the_addon_tests_tier_and_names_real_fields(addon: Path) -> None:
    """``tests/tier_rules.json`` is run by the addon's tests and by the product's: its tier must
    be creatable (every key a field of the tier model), its reasons the contract's, and the
    addon's tests must really read it."""
    table = json.loads((addon / "tests/tier_rules.json").read_text(encoding="utf-8"))
    tier_fields = model_index(addon)["creativeflow.subscription.tier"].fields
    assert sorted(set(table["tier"]) - set(tier_fields)) == []
    reasons = {case["reason"] for case in table["cases"] if "reason" in case}
    assert reasons <= set(contract_tier_reasons())
    common = (addon / "tests/common.py").read_text(encoding="utf-8")
    service_tests = (addon / "tests/test_credit_service.py").read_text(encoding="utf-8")
    assert 'TIER_RULES["tier"]' in common and "tier_rules.json" in common
    assert 'TIER_RULES["cases"]' in service_tests


def test_the_addon_keeps_the_model_code_syntax_of_domain_ai_models(addon: Path) -> None:
    """A code the API accepts must be one the catalogue can hold, and the reverse: the addon's
    ``MODEL_CODE_PATTERN`` is ``creativeflow.domain.ai_models.PATTERN`` character for character,
    and its legacy advanced model is the domain's."""
    from creativeflow.domain.ai_models import ADVANCED_MODEL, PATTERN

    tree = ast.parse((addon / "models/credit_service.py").read_text())
    patterns = [
        node.value.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "MODEL_CODE_PATTERN" for t in node.targets)
        and isinstance(node.value, ast.Call)
        and node.value.args
        and isinstance(node.value.args[0], ast.Constant)
    ]
    assert patterns == [PATTERN]
    assert module_constants(tree)["LEGACY_ADVANCED_MODEL"] == ADVANCED_MODEL
    catalogue = ET.parse(addon / "data/creativeflow_ai_model_data.xml").getroot()
    codes = [r.findtext("field[@name='code']") for r in catalogue.iter("record")]
    assert ADVANCED_MODEL in codes and "creativeflow-standard-v1" in codes
    assert all(code and re.fullmatch(PATTERN, code) for code in codes)


def test_the_manifest_version_has_its_migration(addon: Path) -> None:
    """18.0.1.5.0 turned the stored allow_advanced_models into the tier's model lists: existing
    databases are filled by that version's post-migration, which Odoo finds by the version."""
    version = read_manifest(addon)["version"]
    script = addon / "migrations" / "18.0.1.5.0" / "post-migrate.py"
    assert version >= "18.0.1.5.0"
    tree = ast.parse(script.read_text(encoding="utf-8"))
    [migrate] = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "migrate"
    ]
    assert [argument.arg for argument in migrate.args.args] == ["cr", "version"]
    assert "allow_advanced_models" in script.read_text(encoding="utf-8")


def test_the_shipped_tiers_default_to_one_of_their_models(addon: Path) -> None:
    for tier in _records(
        addon / "demo/creativeflow_credits_demo.xml", "creativeflow.subscription.tier"
    ):
        allowed = tier.find("field[@name='allowed_model_ids']")
        default = tier.find("field[@name='default_model_id']")
        assert allowed is not None and default is not None, tier.get("id")
        assert f"ref('{default.get('ref')}')" in (allowed.get("eval") or ""), tier.get("id")
