"""The command line as a first-time user meets it: help that reads as text, a version, refusals
in one line that name the setting or option to change (exit 2), never a traceback, never a
secret's value; and the local stack's Odoo credentials for the operator commands."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from creativeflow import __version__, cli
from creativeflow.settings import Settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out.strip()) == (0, f"creativeflow {__version__}")


@pytest.mark.parametrize("command", ["", "serve", "migrate", "dev", "sweep", "reconcile"])
def test_help_is_plain_text_and_every_option_says_what_it_does(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert "``" not in out and "`" not in out
    for action in cli._parser()._actions:
        assert action.help, action
    if command:
        sub = cli._parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        assert all(a.help for a in sub._actions), command


def test_a_time_that_is_not_iso_8601_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "reconcile", "--since", "yesterday")
    assert code == 2
    assert "--since" in err and "ISO 8601" in err and "Traceback" not in err


def test_refused_settings_are_one_line_with_the_names_and_no_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_SHARED_SECRET", "dev-leaky-gateway-value-913")
    monkeypatch.setenv("ADMIN_TOKEN", "a-real-admin-token-4c1d9e7b2a")
    code, out, err = run(capsys, "sweep")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "GATEWAY_SHARED_SECRET" in err
    assert "dev-leaky-gateway-value-913" not in err and "a-real-admin-token" not in err
    assert "Traceback" not in err and "input_value" not in err


def test_without_odoo_credentials_outside_development_the_commands_say_what_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    code, _, err = run(capsys, "sweep")
    assert code == 2
    assert "ODOO_API_KEY" in err and "Traceback" not in err


def test_in_development_the_operator_commands_use_the_local_emulators_user() -> None:
    settings = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    local = cli._with_local_odoo(settings)
    assert (local.odoo_login, local.odoo_secret.get_secret_value()) == (
        cli.EMULATOR_LOGIN,
        cli.EMULATOR_PASSWORD,
    )
    configured = settings.model_copy(
        update={"odoo_api_key": SecretStr("k-123"), "odoo_login": "svc"}
    )
    assert cli._with_local_odoo(configured) is configured
