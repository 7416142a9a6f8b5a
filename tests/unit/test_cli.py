"""The command line as a first-time user meets it, run as a separate process: help that reads as
text with every option explained, the installed version, refusals in one line that name the
setting or option to change (exit 2), never a traceback, never a secret's value; and the local
stack's Odoo credentials for the operator commands."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import pytest

from creativeflow import cli
from creativeflow.settings import Settings
from creativeflow_devstack import stack
from creativeflow_devstack.odoo_emulator import load_seed
from tests.cli_support import run_cli

COMMANDS = ["serve", "migrate", "dev", "sweep", "reconcile"]


def test_version_is_the_installed_packages(tmp_path: Path) -> None:
    outcome = run_cli("--version", cwd=tmp_path)
    assert (outcome.code, outcome.out.strip()) == (
        0,
        f"creativeflow {version('creativeflow-orchestrator')}",
    )


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_reads_as_plain_text(tmp_path: Path, command: str) -> None:
    outcome = run_cli(*([command] if command else []), "--help", cwd=tmp_path)
    assert outcome.code == 0
    assert "`" not in outcome.out, outcome.out
    assert "usage: creativeflow" in outcome.out


def test_every_option_of_every_command_says_what_it_does() -> None:
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(subparsers.choices) == sorted(COMMANDS)
    for name, sub in [("creativeflow", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            assert action.help, (name, action.option_strings or action.dest)


@pytest.mark.parametrize(
    ("args", "option", "format_"),
    [
        (["reconcile", "--since", "yesterday"], "--since", "ISO 8601"),
        (["reconcile", "--until", "tomorrow 9am"], "--until", "ISO 8601"),
        (["serve", "--port", "99999"], "--port", "1 to 65535"),
        (["dev", "--port", "http"], "--port", "1 to 65535"),
    ],
)
def test_a_bad_argument_is_one_line_naming_the_option_and_the_format(
    tmp_path: Path, args: list[str], option: str, format_: str
) -> None:
    outcome = run_cli(*args, cwd=tmp_path)
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1, outcome.err
    assert option in outcome.err and format_ in outcome.err
    assert "Traceback" not in outcome.err and "usage:" not in outcome.err


def test_a_window_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    outcome = run_cli("reconcile", "--since", "2026-12-02", "--until", "2026-12-01", cwd=tmp_path)
    assert outcome.code == 2
    assert outcome.err_lines[-1].startswith("creativeflow reconcile: --since")
    assert "Traceback" not in outcome.err


@pytest.mark.parametrize("command", ["serve", "sweep", "dev"])
def test_refused_settings_are_one_line_with_the_names_and_no_value(
    tmp_path: Path, command: str
) -> None:
    outcome = run_cli(
        command,
        cwd=tmp_path,
        ENVIRONMENT="production",
        GATEWAY_SHARED_SECRET="dev-leaky-gateway-value-913",
        ADMIN_TOKEN="a-real-admin-token-4c1d9e7b2a",
        N8N_CALLBACK_SECRETS="changeme",
    )
    assert outcome.code == 2 and outcome.out == ""
    assert len(outcome.err_lines) == 1, outcome.err
    assert "GATEWAY_SHARED_SECRET" in outcome.err and "N8N_CALLBACK_SECRETS" in outcome.err
    for value in ("dev-leaky-gateway-value-913", "a-real-admin-token", "changeme"):
        assert value not in outcome.err
    assert "Traceback" not in outcome.err and "input_value" not in outcome.err


def test_a_setting_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    outcome = run_cli("sweep", cwd=tmp_path, API_PORT="eighty")
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1 and "API_PORT" in outcome.err
    assert "eighty" not in outcome.err


def test_an_unknown_log_level_is_named(tmp_path: Path) -> None:
    outcome = run_cli("sweep", cwd=tmp_path, LOG_LEVEL="verbose")
    assert outcome.code == 2
    assert outcome.err_lines == [
        "creativeflow sweep: LOG_LEVEL: 'verbose' is not a level "
        "(DEBUG, INFO, WARNING, ERROR or CRITICAL)"
    ]


@pytest.mark.parametrize("command", ["sweep", "reconcile", "serve"])
def test_without_odoo_credentials_outside_development_the_commands_say_what_to_set(
    tmp_path: Path, command: str
) -> None:
    outcome = run_cli(command, cwd=tmp_path, ENVIRONMENT="test", ODOO_API_KEY="", ODOO_PASSWORD="")
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1, outcome.err
    assert "ODOO_LOGIN" in outcome.err and "ODOO_API_KEY" in outcome.err
    assert "OdooConfig" not in outcome.err and "Traceback" not in outcome.err


def test_the_local_stack_against_a_real_odoo_needs_its_credentials(tmp_path: Path) -> None:
    outcome = run_cli("dev", "--real-odoo", cwd=tmp_path, ODOO_API_KEY="", ODOO_PASSWORD="")
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1 and "--real-odoo" in outcome.err
    assert "ODOO_API_KEY" in outcome.err


def test_reset_is_refused_against_a_real_odoo(tmp_path: Path) -> None:
    outcome = run_cli("dev", "--real-odoo", "--reset", cwd=tmp_path, ODOO_API_KEY="k-1")
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1 and "--reset" in outcome.err


def test_the_emulator_does_not_stand_in_for_an_odoo_elsewhere(tmp_path: Path) -> None:
    outcome = run_cli("dev", cwd=tmp_path, ODOO_URL="https://odoo.example.com")
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1, outcome.err
    assert "ODOO_URL" in outcome.err and "--real-odoo" in outcome.err
    assert not (tmp_path / ".devstack").exists()


def test_in_development_the_operator_commands_use_the_local_emulators_user() -> None:
    settings = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    local = cli._odoo_for(settings)
    assert (local.odoo_login, local.odoo_secret.get_secret_value()) == (
        stack.EMULATOR_LOGIN,
        stack.EMULATOR_PASSWORD,
    )
    configured = Settings(_env_file=None, environment="development", odoo_api_key="k-123")  # type: ignore[call-arg]
    assert cli._odoo_for(configured) is configured
    staging = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
    assert cli._odoo_for(staging) is staging


def test_the_emulator_user_the_commands_assume_is_the_one_the_emulator_has() -> None:
    users = {(user.login, user.password) for user in load_seed().users}
    assert (stack.EMULATOR_LOGIN, stack.EMULATOR_PASSWORD) in users
