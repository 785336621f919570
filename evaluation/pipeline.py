"""From a configuration to embedded datasets: the slow, cached part of an evaluation run."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from evaluation.config import DatasetConfig, EvalConfig, build_manifest_dataset, build_synthetic_dataset
from evaluation.datasets import EmbeddedSet
from evaluation.extraction import EmbeddingCache, ExtractionSettings, embed_manifest
from evaluation.progress import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmbeddedDataset:
    spec: DatasetConfig
    embedded: EmbeddedSet


def embed_datasets(config: EvalConfig, progress: Progress | None = None) -> list[EmbeddedDataset]:
    progress = progress or Progress(enabled=False)
    results: list[EmbeddedDataset] = []
    manifests = [d for d in config.datasets if d.kind == "manifest"]
    # Read every manifest before loading models, so a wrong path fails in a second, not after a minute.
    datasets = {d.name: build_manifest_dataset(config, d) for d in manifests}
    embedder = None
    if manifests:
        from lfr.adapters.embedder import InsightFaceEmbedder

        embedder = InsightFaceEmbedder(config.model)
    cache = EmbeddingCache(config.resolve(config.cache_dir)) if manifests else None
    settings = ExtractionSettings(config.model.det_size, config.model.det_threshold)
    policy = config.quality_gate.quality_policy()
    try:
        for spec in config.datasets:
            if spec.kind == "synthetic":
                embedded = build_synthetic_dataset(config, spec).embedded()
            else:
                assert embedder is not None
                assert cache is not None
                images = len(datasets[spec.name].samples())
                with (
                    progress.phase(f"{spec.name}: reading", images, "img") as on_read,
                    progress.phase(f"{spec.name}: embedding (not cached)", 0, "img") as on_embed,
                ):
                    embedded = embed_manifest(
                        datasets[spec.name], embedder, settings, cache, policy, on_embed, on_read
                    )
            logger.info(
                "%s: %d samples, %d acquired", spec.name, len(embedded.samples), int(embedded.acquired.sum())
            )
            results.append(EmbeddedDataset(spec, embedded))
    finally:
        if cache is not None:
            cache.close()
    return results
