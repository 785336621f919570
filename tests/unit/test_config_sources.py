"""Config values come from YAML and from LFR_<SECTION>_<KEY> environment variables (which win); relative
paths in a config file mean relative to that file, not to wherever the command was started."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.config import load_config
from lfr.domain.errors import InvalidInput

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_every_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "lfr.yaml"
    config.write_text("grpc: {listen: '127.0.0.1:1'}\nmatching: {batch_max: 64}\n")
    monkeypatch.setenv("LFR_GRPC_LISTEN", "0.0.0.0:50051")
    monkeypatch.setenv("LFR_MATCHING_TOP_K", "7")
    monkeypatch.setenv("LFR_TABLET_ENABLED", "false")
    monkeypatch.setenv("LFR_POLICY_TWO_PERSON_RULE", "true")
    monkeypatch.setenv("LFR_METRICS_LISTEN", "0.0.0.0:9464")
    loaded = load_config(config)
    assert loaded.grpc.listen == "0.0.0.0:50051"  # the environment wins over the file
    assert loaded.matching.top_k == 7
    assert loaded.matching.batch_max == 64  # the file's value where the environment says nothing
    assert loaded.tablet.enabled is False
    assert loaded.policy.two_person_rule is True
    assert loaded.metrics.listen == "0.0.0.0:9464"


def test_a_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_MATCHING_TOP_K", "many")
    with pytest.raises(InvalidInput, match=r"matching\.top_k"):
        load_config(None)


def test_relative_paths_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "lfr.yaml"
    config.write_text(
        "store: {url: 'sqlite:///data/lfr.db'}\n"
        "grpc: {tls_cert_file: tls/grpc.crt, tls_key_file: /abs/grpc.key}\n"
        "tablet: {session_secret_file: secret}\n"
    )
    loaded = load_config(config)
    assert loaded.store.url == f"sqlite:///{folder / 'data' / 'lfr.db'}"
    assert loaded.grpc.tls_cert_file == folder / "tls" / "grpc.crt"
    assert loaded.grpc.tls_key_file == Path("/abs/grpc.key")
    assert loaded.tablet.session_secret_file == folder / "secret"


def test_absolute_and_non_file_store_urls_are_left_alone(tmp_path: Path) -> None:
    config = tmp_path / "lfr.yaml"
    for url in ("sqlite:////var/lib/lfr/lfr.db", "memory://", "postgresql+psycopg://lfr@db/lfr"):
        config.write_text(f"store: {{url: '{url}'}}\n")
        assert load_config(config).store.url == url


def test_the_embedded_example_names_an_absolute_database() -> None:
    url = load_config(DEPLOY / "lfr.embedded.yaml").store.url
    assert url == "sqlite:////var/lib/lfr/lfr.db"


def test_an_empty_environment_variable_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "lfr.yaml"
    config.write_text("store: {url: 'memory://'}\n")
    monkeypatch.setenv("LFR_STORE_URL", "")
    assert load_config(config).store.url == "memory://"
