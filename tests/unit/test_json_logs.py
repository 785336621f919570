"""Optional JSON logs (LFR_LOG_FORMAT=json or --log-format json): one JSON object per line, for log
shippers; the text format stays the default."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lfr.bootstrap import configure_logging


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    configure_logging("WARNING")
    logging.getLogger().handlers.clear()


def test_json_lines_carry_time_level_logger_and_message(tmp_path: Path) -> None:
    log = tmp_path / "lfr.log"
    configure_logging("INFO", str(log), fmt="json")
    logging.getLogger("lfr.test").info("window %s armed", "win_1")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("lfr.test").exception("refresh failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["message"] == "window win_1 armed"
    assert first["level"] == "INFO"
    assert first["logger"] == "lfr.test"
    assert first["time"].endswith("Z")
    assert second["exception"].startswith("Traceback")
    assert "ValueError: boom" in second["exception"]


def test_the_environment_chooses_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "lfr.log"
    monkeypatch.setenv("LFR_LOG_FORMAT", "json")
    configure_logging("INFO", str(log))
    logging.getLogger("lfr.test").warning("hello")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert json.loads(log.read_text())["message"] == "hello"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        configure_logging("INFO", fmt="xml")
