"""`lfr camera` and `lfr enrol` entry points: config validation and clear errors, without a matcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lfr.adapters.camera.config import load_camera_config
from lfr.cli.main import app
from lfr.domain.errors import InvalidInput


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_camera_config_maps_to_the_pipeline_policies(tmp_path: Path) -> None:
    config = load_camera_config(
        write(
            tmp_path / "cam.yaml",
            "camera_id: gate-3\nsource: {uri: rtsp://cam/stream}\n"
            "gate: {min_face_px: 64, max_abs_yaw_deg: 30}\ntracker: {min_interval_ms: 500}\n",
        )
    )
    assert config.gate.policy().min_face_px == 64
    assert config.gate.policy().max_abs_yaw_deg == 30
    assert config.tracker.policy().min_interval_s == 0.5
    assert config.models.intra_op_threads == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("camera_id: c\nsource: {uri: x}\nsurprise: 1\n", "surprise: Extra inputs are not permitted"),
        ("camera_id: c\n", "source: Field required"),
        ("camera_id: c\nsource: {uri: x}\ngate: {min_detector_score: 2}\n", "gate.min_detector_score"),
        ("camera_id: 'bad id/'\nsource: {uri: x}\n", "camera_id"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_camera_config_is_refused_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_camera_config(write(tmp_path / "cam.yaml", text))


def test_camera_command_reports_a_missing_token_and_unreadable_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LFR_CAMERA_TOKEN", raising=False)
    runner = CliRunner()
    config = write(tmp_path / "cam0.yaml", f"camera_id: c1\nsource: {{uri: {tmp_path}}}\n")
    result = runner.invoke(app, ["camera", "--config", str(config)])
    assert result.exit_code == 2
    assert "no camera token: environment variable LFR_CAMERA_TOKEN is empty or unset" in result.output

    monkeypatch.setenv("LFR_CAMERA_TOKEN", "t0k3n")
    config = write(tmp_path / "cam.yaml", f"camera_id: c1\nsource: {{uri: {tmp_path / 'nope.mp4'}}}\n")
    result = runner.invoke(app, ["camera", "--config", str(config)])
    assert result.exit_code == 2
    assert "is not a device index, URL, video file or image folder" in result.output

    (tmp_path / "frames").mkdir()
    config = write(tmp_path / "cam2.yaml", f"camera_id: c1\nsource: {{uri: {tmp_path / 'frames'}}}\n")
    result = runner.invoke(app, ["camera", "--config", str(config)])
    assert result.exit_code == 2
    assert "holds no images" in result.output


def test_enrol_command_reports_a_bad_csv(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "s.csv", "subject_id,name\nS1,A\n")
    result = CliRunner().invoke(
        app, ["enrol", "--images", str(tmp_path), "--csv", str(csv_file), "--dry-run"]
    )
    assert result.exit_code == 2
    assert "missing column(s) category, reason, image_source, image_path" in result.output
