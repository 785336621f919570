"""Every example config in deploy/ parses, so the documented setups cannot silently rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfr.adapters.camera.config import load_camera_config
from lfr.adapters.grpc.channels import is_loopback
from lfr.config import load_config
from lfr.domain.errors import InvalidInput
from lfr.domain.evaluation import EquityGate

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("name", ["lfr.embedded.yaml", "lfr.scaleout.yaml"])
def test_matcher_configs_parse(name):
    config = load_config(DEPLOY / name)
    assert config.policy.equity_gate is EquityGate.REFUSE
    assert config.policy.two_person_rule


@pytest.mark.parametrize("name", ["lfr.embedded.yaml", "lfr.scaleout.yaml"])
def test_matcher_configs_listening_beyond_loopback_use_mutual_tls(name):
    grpc = load_config(DEPLOY / name).grpc
    assert not is_loopback(grpc.listen)
    assert grpc.tls_cert_file is not None
    assert grpc.client_ca_file is not None


def test_camera_example_uses_tls():
    security = load_camera_config(DEPLOY / "camera.example.yaml").matcher.security()
    assert security.uses_tls
    assert security.client_cert_file is not None


def test_scaleout_config_uses_postgresql():
    assert load_config(DEPLOY / "lfr.scaleout.yaml").store.url.startswith("postgresql")


def test_camera_example_parses():
    assert load_camera_config(DEPLOY / "camera.example.yaml").camera_id == "high-st-1"


def test_unknown_keys_are_refused_with_their_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("matching:\n  treshold: 0.6\n")
    with pytest.raises(InvalidInput, match=r"matching\.treshold"):
        load_config(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("matching: {top_k: 0}", "top_k"),
        ("[1, 2]", "mapping"),
        ("store: {url: 'x'\n", "not valid YAML"),
    ],
)
def test_bad_config_gets_a_clear_error(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_config(bad)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(InvalidInput, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["lfr.embedded.yaml", "lfr.scaleout.yaml"])
def test_matcher_configs_sign_the_audit_trail_and_refuse_to_start_without_a_key(name):
    audit = load_config(DEPLOY / name).audit
    assert audit.signing_key_file is not None
    assert audit.anchor_file is not None
    assert not audit.create_missing_key
    assert audit.checkpoint_seconds <= 60


@pytest.mark.parametrize("name", ["lfr.embedded.yaml", "lfr.scaleout.yaml"])
def test_matcher_configs_encrypt_images_with_a_key_outside_the_database(name):
    encryption = load_config(DEPLOY / name).encryption
    assert encryption.key_file is not None
    assert not encryption.create_missing_key
