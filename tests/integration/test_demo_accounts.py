"""The demo gives every person it creates a tablet password and prints each one: a user on the way to the
supervisor view needs the supervisor's, not only the officer's."""

from __future__ import annotations

from lfr.adapters.passwords import Argon2Hasher
from lfr.bootstrap import build_container
from lfr.config import load_config
from lfr.demo.run import AUDITOR, OFFICER, SUPERVISOR, demo_accounts, sign_in_lines
from lfr.domain.principal import PrincipalKind
from lfr.services.passwords import PasswordService


def test_every_demo_person_gets_a_working_password_and_a_printed_line() -> None:
    container = build_container(load_config(None, {"store.url": "memory://"}))
    try:
        _tokens, passwords = demo_accounts(container)
        people = {p.name for p in container.principals.list_principals() if p.kind is PrincipalKind.USER}
        assert {SUPERVISOR, OFFICER, AUDITOR} <= people
        assert set(passwords) == people  # every person the demo creates, whatever it adds later
        service = PasswordService(container.store, container.clock, Argon2Hasher())
        for name, secret in passwords.items():
            assert service.authenticate(name, secret).name == name
        lines = sign_in_lines(passwords)
        for name, secret in passwords.items():
            assert any(name in line and secret in line and "()" not in line for line in lines), name
    finally:
        container.close()
