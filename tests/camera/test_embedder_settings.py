"""Model settings resolve without loading any model."""

from __future__ import annotations

import pytest

from lfr.adapters.embedder import ModelPackError, ModelSettings, default_providers, locate_pack


def test_default_providers_prefer_cuda_only_when_available():
    assert default_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert default_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert default_providers(["TensorrtExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]


def test_pack_location_comes_from_settings_then_environment(tmp_path, monkeypatch):
    pack = tmp_path / "models" / "mypack"
    pack.mkdir(parents=True)
    (pack / "rec.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("LFR_MODEL_ROOT", str(tmp_path))
    monkeypatch.setenv("LFR_MODEL_PACK", "mypack")
    assert locate_pack(ModelSettings()) == pack
    with pytest.raises(ModelPackError, match="other"):
        locate_pack(ModelSettings(pack="other"))


def test_without_a_root_insightface_finds_or_downloads_its_default(monkeypatch):
    monkeypatch.delenv("LFR_MODEL_ROOT", raising=False)
    assert locate_pack(ModelSettings()) is None


def test_a_pack_folder_without_models_is_named(tmp_path):
    (tmp_path / "models" / "empty").mkdir(parents=True)
    with pytest.raises(ModelPackError, match=r"no \.onnx files"):
        locate_pack(ModelSettings(root=str(tmp_path), pack="empty"))
