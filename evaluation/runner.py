"""`lfr eval run`: embed, search, analyse, report."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.analysis import StatisticsSettings, WatchlistAnalysis, analyse, failure_to_acquire
from evaluation.audit import (
    AppliedReviews,
    AuditSettings,
    Review,
    apply_reviews,
    audit_watchlist,
    load_reviews,
    near_duplicates,
    without_nonmated,
)
from evaluation.config import EvalConfig
from evaluation.fusion_study import FusionStudy, run_fusion_study
from evaluation.index_agreement import IndexAgreement, agreement, write_agreements
from evaluation.pipeline import EmbeddedDataset, embed_datasets
from evaluation.progress import Progress
from evaluation.protocol import INTERSECTION_JOIN, SOURCE_ATTRIBUTE, OpenSetProtocol, Role, WatchlistRun
from evaluation.report import (
    AuditedWatchlist,
    AuditInputs,
    ReportInputs,
    operating_threshold_of,
    recommended_overall,
    write_report,
)
from evaluation.scaling import watchlist_scaling
from lfr.adapters.index_spec import IndexSpec

logger = logging.getLogger(__name__)

QUANTISED_PACKS = {"buffalo_sc_int8": "int8-quantised MobileFaceNet (insightface buffalo_sc, w600k_mbf)"}


def _model_description(config: EvalConfig) -> str:
    from lfr.adapters.model_pack import prepared_description

    prepared = prepared_description(config.model)
    return prepared or QUANTISED_PACKS.get(config.model.resolved_pack(), "")


@dataclass(frozen=True, slots=True)
class RunResult:
    paths: dict[str, Path]
    recommended_threshold: float | None


def run_evaluation(
    config: EvalConfig,
    config_text: str,
    embedded: Sequence[EmbeddedDataset] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    progress = progress or Progress(enabled=False)
    reviews = (
        load_reviews(config.resolve(config.audit.exclusions)) if config.audit.exclusions is not None else []
    )
    datasets = list(embedded) if embedded is not None else embed_datasets(config, progress)
    roles = [Role(d.embedded, d.spec.role == "identities") for d in datasets]
    index_spec = IndexSpec(config.protocol.index, dict(config.protocol.index_params))

    def make_protocol(
        seed: int, synthetic_filler: bool = config.protocol.synthetic_filler
    ) -> OpenSetProtocol:
        return OpenSetProtocol(
            roles,
            attributes=config.attributes,
            intersections=config.intersections,
            enrolment_images=config.protocol.enrolment_images,
            max_mated_identities=config.protocol.max_mated_identities,
            synthetic_filler=synthetic_filler,
            top_k=config.protocol.top_k,
            seed=seed,
            max_searches_per_identity=config.protocol.max_searches_per_identity,
            index=index_spec,
        )

    protocol = make_protocol(config.seed)
    s = config.statistics
    settings = StatisticsSettings(
        alpha=s.alpha,
        confidence=s.confidence,
        correction=s.correction,
        min_group_searches=s.min_group_searches,
        bootstrap_samples=s.bootstrap_samples,
        recommend_on=tuple(s.recommend_on),
        rank=config.protocol.rank,
        seed=config.seed,
        fpir_ceiling=s.fpir_ceiling,
    )
    light = dataclasses.replace(settings, bootstrap_samples=0)
    group_by = [
        *config.attributes,
        *(INTERSECTION_JOIN.join(c) for c in config.intersections),
        SOURCE_ATTRIBUTE,
    ]
    known_images = {(d.embedded.dataset, x.key) for d in datasets for x in d.embedded.samples}
    known_identities = {
        f"{d.embedded.dataset}:{x.identity}" for d in datasets for x in d.embedded.samples if x.identity
    }

    def prepare(run: WatchlistRun) -> WatchlistRun:
        return apply_reviews(run, reviews, known_images, known_identities).run

    thresholds = config.threshold_values()
    sizes = sorted(config.protocol.watchlist_sizes)
    analyses = []
    drawn: list[tuple[WatchlistRun, AppliedReviews]] = []
    agreements: list[IndexAgreement] = []
    with progress.phase("analysing watchlists", len(sizes), "size") as step:
        for position, size in enumerate(sizes, start=1):
            raw = protocol.run(size)
            applied = apply_reviews(raw, reviews, known_images, known_identities)
            drawn.append((raw, applied))
            analyses.append(analyse(applied.run, thresholds, group_by, settings))
            logger.info(
                "watchlist %d analysed; recommended threshold %s", size, analyses[-1].recommended_threshold
            )
            found = agreement(raw, analyses[-1].recommended_threshold)
            if found is not None:
                agreements.append(found)
                logger.info(
                    "watchlist %d, index %s against exact search: recall@1 %.4f, alerts kept %s of %d",
                    size,
                    found.index,
                    found.recall_at_1,
                    "n/a" if found.alerts_kept is None else f"{found.alerts_kept:.4f}",
                    found.exact_alerts,
                )
            step(position, len(sizes))
    operating = operating_threshold_of(analyses)
    audit_settings = AuditSettings(
        top_pairs=config.audit.top_pairs,
        max_pairs=config.audit.max_pairs,
        suspect_score=config.audit.suspect_score,
        duplicate_score=config.audit.duplicate_score,
        max_duplicates=config.audit.max_duplicates,
    )
    audits = []
    with progress.phase("ground-truth audit", len(sizes), "size") as step:
        for position, ((raw, applied), analysis) in enumerate(zip(drawn, analyses, strict=True), start=1):
            audit = audit_watchlist(applied.run, reviews, applied.excluded, operating, audit_settings)
            as_drawn = (
                analyse(raw, thresholds, group_by, light, fixed_fpirs=()) if applied.excluded else analysis
            )
            suspected = audit.suspected_searches
            cleaned = (
                analyse(without_nonmated(applied.run, suspected), thresholds, group_by, light, fixed_fpirs=())
                if suspected.any()
                else analysis
            )
            audits.append(AuditedWatchlist(audit, as_drawn, analysis, cleaned))
            step(position, len(sizes))
    fusion = fusion_study(config, protocol, group_by, settings, operating, reviews, progress)
    duplicates = near_duplicates(
        [d.embedded for d in datasets], audit_settings.duplicate_score, audit_settings.max_duplicates
    )
    traits = {
        (d.embedded.dataset, x.key): t
        for d in datasets
        for x, t in zip(d.embedded.samples, d.embedded.traits, strict=False)
    }
    scaling = None
    if config.scaling is not None:
        seeds = [config.seed + k for k in range(config.scaling.draws)]
        scaled_sizes = sorted(config.scaling.sizes)
        with progress.phase("watchlist-size scaling", len(seeds) * len(scaled_sizes), "run") as step:
            done = 0

            def advance() -> None:
                nonlocal done
                done += 1
                step(done, len(seeds) * len(scaled_sizes))

            scaling = watchlist_scaling(
                lambda seed: make_protocol(
                    seed, config.scaling.synthetic_filler if config.scaling else False
                ),
                prepare,
                scaled_sizes,
                seeds,
                thresholds,
                group_by,
                settings,
                operating,
                advance,
            )
    acquisition = [
        g
        for d in datasets
        for g in failure_to_acquire(d.embedded, config.attributes, config.intersections, s.confidence)
    ]
    roots = {
        d.spec.name: config.resolve(d.spec.root)
        for d in datasets
        if d.spec.kind == "manifest" and d.spec.root is not None
    }
    inputs = ReportInputs(
        name=config.name,
        config_text=config_text,
        seed=config.seed,
        model_id=protocol.model_id,
        model_description=_model_description(config)
        if any(d.spec.kind == "manifest" for d in datasets)
        else "synthetic embeddings (no model)",
        embedded=[d.embedded for d in datasets],
        roles={d.embedded.dataset: d.spec.role for d in datasets},
        analyses=analyses,
        acquisition=acquisition,
        statistics=s.model_dump() | {"fpir_ceiling": s.fpir_ceiling},
        rank=config.protocol.rank,
        enrolment_images=config.protocol.enrolment_images,
        caveats=caveats(config, datasets, analyses),
        quality_gate=quality_gate_record(config, datasets),
        index_type=index_spec.label(),
        audit=AuditInputs(
            exclusions_file=config.audit.exclusions,
            reviews=tuple(reviews),
            unknown_reviews=tuple(
                r
                for r in reviews
                if (r.probe_dataset, r.probe_image) not in known_images
                or r.listed_identity not in known_identities
            ),
            watchlists=tuple(audits),
            duplicates=duplicates[0],
            duplicates_total=duplicates[1],
            duplicate_score=audit_settings.duplicate_score,
            traits=traits,
            image_roots=roots if config.audit.thumbnails else {},
        ),
        scaling=scaling,
        fusion_study=fusion,
    )
    paths = write_report(inputs, config.resolve(config.output_dir))
    if agreements:
        paths["index_agreement"] = write_agreements(agreements, config.resolve(config.output_dir))
    return RunResult(paths, recommended_overall(analyses))


def fusion_study(
    config: EvalConfig,
    protocol: OpenSetProtocol,
    group_by: Sequence[str],
    settings: StatisticsSettings,
    operating: float | None,
    reviews: Sequence[Review],
    progress: Progress,
) -> FusionStudy | None:
    study = config.fusion_study
    if study is None:
        return None
    size = study.watchlist_size or max(config.protocol.watchlist_sizes)
    with progress.phase("fusion study", 1, "study") as step:
        found = run_fusion_study(
            protocol,
            size,
            study.enrolment_images,
            study.probe_samples,
            group_by,
            settings,
            operating,
            study.target_fpir,
            reviews,
        )
        step(1, 1)
    for variant in found.variants:
        logger.info(
            "fusion study N=%d, %s: TPIR %.4f at FPIR %g (threshold %.3f)",
            size,
            variant.name,
            variant.at_target.tpir.value,
            study.target_fpir,
            variant.threshold_at_target,
        )
    return found


def quality_gate_record(config: EvalConfig, datasets: Sequence[EmbeddedDataset]) -> dict[str, object]:
    if not any(d.spec.kind == "manifest" for d in datasets):
        return {"kind": "n/a", "description": "not applicable (synthetic embeddings)", "policy": None}
    policy = config.quality_gate.quality_policy()
    return {
        "kind": config.quality_gate.kind,
        "description": config.quality_gate.describe(),
        "policy": None if policy is None else dataclasses.asdict(policy),
    }


def quality_gate_note(config: EvalConfig) -> str:
    if config.quality_gate.kind == "none":
        return (
            "Quality gate: none. The live camera node rejects small, blurred and turned-away faces before "
            "matching; these figures include faces it would have rejected."
        )
    return (
        f"Quality gate: {config.quality_gate.describe()}, as the live camera node applies it. Faces it "
        "rejects are failures to acquire (per group and reason in the failure-to-acquire table) and are "
        "never searched, as in a deployment. Its measures on still, pre-cropped photographs differ from "
        "those on CCTV frames of moving people, so the live rejection rate differs."
    )


def caveats(
    config: EvalConfig,
    datasets: Sequence[EmbeddedDataset],
    analyses: Sequence[WatchlistAnalysis],
) -> list[str]:
    notes = []
    names = {d.spec.name.lower() for d in datasets}
    if "lfw" in names:
        notes.append(
            "LFW: gender labels from Afifi & Abdelhamed 2017 (manually verified); race labels from the MICA "
            "project (usc-sail/mica-race-from-face) exist for only about 30% of identities, and labels "
            "where annotators disagreed count as unknown. LFW is mostly white, male, adult and "
            "photographed by the press: not the population a camera in a UK street sees."
        )
    if "utkface" in names:
        notes.append(
            "UTKFace: age, gender and race labels come from the dataset's authors, in five coarse race "
            "categories; it has no identity labels, so its images serve only as non-mated passers-by. "
            "A UTKFace person who is also in LFW would be counted as a passer-by."
        )
    cap = config.protocol.max_searches_per_identity
    notes.append(
        (
            f"Searches per named person are capped at {cap}. "
            if cap
            else "Searches per person are not capped. "
        )
        + "Searches of one named person (several images) are not independent; Wilson and "
        "Clopper-Pearson intervals and the Fisher tests treat searches as independent (so they overstate "
        "certainty somewhat for mated rates); the bootstrap intervals for mated rates resample people."
    )
    floor = config.statistics.min_group_searches
    small = sorted(
        {
            f"{g.attribute}={g.group} ({kind})"
            for a in analyses
            for g in a.rows[0].groups
            for kind, n in (("fpir", g.fpir.searches), ("fnir", g.fnir.searches))
            if g.group and 0 < n < floor
        }
    )
    if small:
        notes.append(
            f"Groups with fewer than {floor} searches of a kind are shown but not tested: "
            f"{', '.join(small)}. No significant differential is not evidence of no differential when "
            "groups are small: see the interval widths."
        )
    if any(a.run.synthetic_filler for a in analyses):
        notes.append(
            "Some watchlists were padded with SYNTHETIC filler identities (Gaussian vectors fitted to the "
            "enrolled embeddings). They are nobody's face; their effect on FPIR is not that of real people."
        )
    if any(d.embedded.synthetic for d in datasets):
        notes.append("Synthetic datasets are in this run: their figures say nothing about any real model.")
    if any(d.spec.kind == "manifest" for d in datasets):
        notes.append(quality_gate_note(config))
    if any(d.spec.role == "passers_by" for d in datasets):
        notes.append(
            "Non-mated searches come from more than one source (see the 'dataset' rows), which differ in "
            "imaging as well as people, so part of a group differential can be a dataset effect. A group's "
            "FPIR also depends on how many listed people resemble it: a watchlist drawn from LFW is mostly "
            "White and male, so White passers-by meet more look-alikes on it; a force's own watchlist "
            "composition changes these figures."
        )
    notes.append(
        "Thresholds are on this model's cosine-similarity scale; they are not comparable with another "
        "model's (e.g. the NPL 2023 study's 0.6 for the Met's NEC system)."
    )
    notes.append(
        "Multiple comparisons are corrected within each rate and threshold "
        f"({config.statistics.correction}), not across thresholds; the recommended threshold requires "
        f"no significant {'/'.join(r.upper() for r in config.statistics.recommend_on)} differential at it "
        "and at every higher threshold of the grid."
    )
    return notes
