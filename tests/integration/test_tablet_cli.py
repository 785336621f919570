"""`lfr tablet password`: sets an argon2 password an officer can then sign in with."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lfr.adapters.passwords import Argon2Hasher
from lfr.adapters.storage import open_store
from lfr.cli.main import app
from lfr.domain.clock import SystemClock
from lfr.domain.errors import Unauthenticated
from lfr.services.passwords import PasswordService


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "lfr.yaml"
    path.write_text(f"store:\n  url: sqlite:///{tmp_path / 'lfr.db'}\n")
    return path


def test_password_from_stdin_lets_the_person_sign_in(config_file):
    runner = CliRunner()
    added = runner.invoke(app, ["account", "add", "olly", "--role", "officer", "--config", str(config_file)])
    assert added.exit_code == 0, added.output
    result = runner.invoke(
        app,
        ["tablet", "password", "olly", "--password-stdin", "--config", str(config_file)],
        input="a long enough secret\n",
    )
    assert result.exit_code == 0, result.output
    store = open_store(f"sqlite:///{config_file.parent / 'lfr.db'}")
    try:
        passwords = PasswordService(store, SystemClock(), Argon2Hasher())
        assert passwords.authenticate("olly", "a long enough secret").name == "olly"
        with pytest.raises(Unauthenticated):
            passwords.authenticate("olly", "a long enough secret\n")
        with store() as uow:
            assert [r.details for r in uow.audit.records() if r.action == "principal.changed"][-1] == {
                "change": "password_set"
            }
    finally:
        store.close()


def test_short_password_and_unknown_account_are_refused(config_file):
    runner = CliRunner()
    runner.invoke(app, ["account", "add", "olly", "--role", "officer", "--config", str(config_file)])
    short = runner.invoke(
        app, ["tablet", "password", "olly", "--password-stdin", "--config", str(config_file)], input="short\n"
    )
    unknown = runner.invoke(
        app,
        ["tablet", "password", "nobody", "--password-stdin", "--config", str(config_file)],
        input="a long enough secret\n",
    )
    assert short.exit_code != 0
    assert "10 to 1024 characters" in short.output
    assert unknown.exit_code != 0
    assert "nobody" in unknown.output
