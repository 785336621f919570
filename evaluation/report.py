"""The oversight report: a JSON document (the record), CSV tables, and one self-contained HTML page
(plots embedded as base64 PNG, no external assets) rendered with jinja2."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.analysis import (
    AcquisitionGroup,
    Rate,
    ThresholdResult,
    WatchlistAnalysis,
    searches_to_show_ceiling,
)
from evaluation.audit import DuplicatePair, ImageRef, Pair, Review, WatchlistAudit, attribute_concentration
from evaluation.datasets import UNKNOWN, EmbeddedSet
from evaluation.fusion_study import FusionStudy
from evaluation.metrics import one_in
from evaluation.protocol import INTERSECTION_JOIN as INTERSECTION
from evaluation.protocol import SOURCE_ATTRIBUTE
from evaluation.scaling import SizeSummary
from lfr.domain.evaluation import EXACT_INDEX

REPORT_VERSION = 1
TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class ReportInputs:
    name: str
    config_text: str
    seed: int
    model_id: str
    embedded: Sequence[EmbeddedSet]
    roles: dict[str, str]  # dataset -> identities / passers_by
    analyses: Sequence[WatchlistAnalysis]
    acquisition: Sequence[AcquisitionGroup]
    statistics: dict[str, Any]
    rank: int
    enrolment_images: int
    caveats: Sequence[str]
    model_description: str = ""
    quality_gate: dict[str, Any] | None = None  # kind, description, policy fields
    index_type: str = EXACT_INDEX  # IndexSpec.label() of the index the protocol searched
    audit: AuditInputs | None = None
    scaling: Sequence[SizeSummary] | None = None
    fusion_study: FusionStudy | None = None


@dataclass(frozen=True, slots=True)
class AuditedWatchlist:
    audit: WatchlistAudit
    as_drawn: WatchlistAnalysis  # before the reviewed exclusions
    reviewed: WatchlistAnalysis  # after them: the analysis the report's figures come from
    without_suspects: WatchlistAnalysis  # reviewed, and every unreviewed suspect dropped too


@dataclass(frozen=True, slots=True)
class AuditInputs:
    exclusions_file: str | None
    reviews: Sequence[Review]
    unknown_reviews: Sequence[Review]
    watchlists: Sequence[AuditedWatchlist]
    duplicates: Sequence[DuplicatePair]
    duplicates_total: int
    duplicate_score: float
    traits: dict[ImageRef, Any]
    image_roots: dict[str, Path]  # dataset -> image folder, for thumbnails; empty: none drawn


def dataset_fingerprint(embedded: Sequence[EmbeddedSet]) -> str:
    combined = "\n".join(sorted(e.fingerprint for e in embedded))
    return "sha256:" + hashlib.sha256(combined.encode()).hexdigest()


def recommended_overall(analyses: Sequence[WatchlistAnalysis]) -> float | None:
    """A threshold must hold for every watchlist size evaluated: the highest per-size recommendation."""
    values = [a.recommended_threshold for a in analyses]
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def differential_free_overall(analyses: Sequence[WatchlistAnalysis]) -> float | None:
    values = [a.differential_free_threshold for a in analyses]
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def _highest(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def operating_threshold_of(analyses: Sequence[WatchlistAnalysis]) -> float | None:
    """Where the report reads its figures: the recommended threshold; when a run cannot show the ceiling,
    the provisional one (no significant differential, FPIR's point estimate below the ceiling); failing
    that, the lowest threshold free of significant differentials."""
    return operating_basis(analyses)[0]


def operating_basis(analyses: Sequence[WatchlistAnalysis]) -> tuple[float | None, str]:
    recommended = recommended_overall(analyses)
    if recommended is not None:
        return recommended, "recommended"
    provisional = _highest([a.provisional_threshold for a in analyses])
    if provisional is not None:
        return provisional, "provisional"
    return differential_free_overall(analyses), "differential-free"


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _rate(rate: Rate) -> dict[str, Any]:
    out: dict[str, Any] = {
        "count": rate.errors,
        "searches": rate.searches,
        "value": _finite(rate.value),
        "wilson": [_finite(v) for v in rate.wilson],
        "clopper_pearson": [_finite(v) for v in rate.clopper_pearson],
    }
    if rate.bootstrap is not None:
        out["bootstrap_by_person"] = [_finite(v) for v in rate.bootstrap]
    return out


def _row(row: ThresholdResult) -> dict[str, Any]:
    return {
        "threshold": row.threshold,
        "tpir": _rate(row.tpir),
        "fnir": _rate(row.fnir),
        "fpir": _rate(row.fpir),
        "false_positive_one_in": _finite(one_in(row.fpir.value)) if row.fpir.searches else None,
        "significant_differential": row.significant,
        "significant_by_rate": dict(row.significant_by_rate),
        "min_adjusted_p": {rate: _finite(row.min_adjusted_p(rate)) for rate in ("fpir", "fnir")},
        "groups": [
            {
                "attribute": g.attribute,
                "group": g.group or "unknown",
                "tested": g.tested,
                "fpir": _rate(g.fpir),
                "fnir": _rate(g.fnir),
            }
            for g in row.groups
        ],
        "differentials": [
            {
                "attribute": d.attribute,
                "rate": d.rate,
                "groups": list(d.test.groups),
                "errors": list(d.test.errors),
                "searches": list(d.test.totals),
                "chi2_p": _finite(d.test.chi2_p_value),
                "chi2_valid": d.test.chi2_valid,
                "max_min_ratio": _finite(d.test.max_min_ratio)
                if not math.isinf(d.test.max_min_ratio)
                else "inf",
                "pairs": [
                    {"a": p.group_a, "b": p.group_b, "p": _finite(p.p_value), "adjusted_p": _finite(adj)}
                    for p, adj in zip(d.test.pairs, d.adjusted_pair_p, strict=True)
                ],
            }
            for d in row.differentials
        ],
    }


def build_document(inputs: ReportInputs) -> dict[str, Any]:
    recommended = recommended_overall(inputs.analyses)
    return {
        "report_version": REPORT_VERSION,
        "name": inputs.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_id": inputs.model_id,
        "model_description": inputs.model_description,
        # The index the protocol searched (`protocol.index`, exact flat by default, as `matching.index`); the
        # equity gate accepts this evaluation only for windows matched with the same index type.
        "index_type": inputs.index_type,
        "dataset_fingerprint": dataset_fingerprint(inputs.embedded),
        "datasets": [
            {
                "name": e.dataset,
                "role": inputs.roles[e.dataset],
                "fingerprint": e.fingerprint,
                "synthetic": e.synthetic,
                "images": len(e.samples),
                "acquired": int(e.acquired.sum()),
                "identities": len({s.identity for s in e.samples if s.identity is not None}),
            }
            for e in inputs.embedded
        ],
        "quality_gate": inputs.quality_gate or {"kind": "none", "description": "none", "policy": None},
        "seed": inputs.seed,
        "protocol": {"rank": inputs.rank, "enrolment_images": inputs.enrolment_images},
        "statistics": inputs.statistics,
        "recommended_threshold": recommended,
        "passed": recommended is not None,
        "recommendation": _recommendation_doc(inputs),
        "watchlists": [
            {
                "size": a.run.size,
                "mated_identities": a.run.mated_identities,
                "real_filler": a.run.real_filler,
                "synthetic_filler": a.run.synthetic_filler,
                "enrolled_images": a.run.enrolled_images,
                "mated_searches": len(a.run.mated),
                "nonmated_searches": len(a.run.nonmated),
                "nonmated_by_source": _counts(a.run.nonmated.source),
                "rank1_identification_rate": _finite(a.rank1),
                "recommended_threshold": a.recommended_threshold,
                "differential_free_threshold": a.differential_free_threshold,
                "ceiling_threshold": a.ceiling_threshold,
                "provisional_threshold": a.provisional_threshold,
                "fnir_at_fpir": {
                    str(k): {"fnir": _finite(v[0]), "threshold": _finite(v[1])}
                    for k, v in a.fnir_at_fpir.items()
                },
                "thresholds": [_row(r) for r in a.rows],
            }
            for a in inputs.analyses
        ],
        "failure_to_acquire": [
            {
                "dataset": g.dataset,
                "attribute": g.attribute,
                "group": g.group or "unknown",
                **_rate(g.rate),
                "reasons": dict(g.reasons),
            }
            for g in inputs.acquisition
        ],
        "caveats": list(inputs.caveats),
        "config": inputs.config_text,
        "audit": None
        if inputs.audit is None
        else _audit_doc(inputs.audit, operating_threshold_of(inputs.analyses)),
        "scaling": None if inputs.scaling is None else [_scaling_doc(x) for x in inputs.scaling],
        "fusion_study": None if inputs.fusion_study is None else _fusion_doc(inputs.fusion_study),
    }


def _recommendation_doc(inputs: ReportInputs) -> dict[str, Any]:
    """Why the recommended threshold is what it is (or why there is none), in terms a reader can check."""
    analyses = inputs.analyses
    s = inputs.statistics
    ceiling = s.get("fpir_ceiling")
    recommended = recommended_overall(analyses)
    free = differential_free_overall(analyses)
    ceilings = [a.ceiling_threshold for a in analyses]
    ceiling_overall = None if not ceilings or None in ceilings else max(c for c in ceilings if c is not None)
    needed = None if ceiling is None else searches_to_show_ceiling(ceiling, float(s.get("confidence", 0.95)))
    smallest = min((len(a.run.nonmated) for a in analyses), default=0)
    if recommended is not None:
        reason = (
            f"{recommended:.2f} is the lowest threshold at and above which no "
            f"{'/'.join(r.upper() for r in s.get('recommend_on', ['fpir']))} differential is significant"
            + (
                f" and FPIR's upper {100 * float(s.get('confidence', 0.95)):.0f}% bound is below 1 in "
                f"{1 / ceiling:,.0f}"
                if ceiling is not None
                else ""
            )
            + ", for every watchlist size evaluated."
        )
    elif free is None:
        reason = "A significant differential remains at the highest threshold tested."
    elif needed is not None and smallest < needed:
        reason = (
            f"No threshold can show FPIR below 1 in {1 / ceiling:,.0f} with this data: a watchlist has only "
            f"{smallest:,} non-mated searches, and even with no false alert at all the upper "
            f"{100 * float(s.get('confidence', 0.95)):.0f}% bound stays above the ceiling below {needed:,}. "
            f"Without the ceiling, the lowest threshold free of significant differentials is {free:.2f}"
            + _provisional_text(analyses)
        )
    else:
        reason = (
            f"FPIR's upper bound stays at or above 1 in {1 / ceiling:,.0f} at every threshold tested"  # type: ignore[operator]
            f"; the lowest threshold free of significant differentials is {free:.2f}"
            + _provisional_text(analyses)
        )
    return {
        "recommended_threshold": recommended,
        "differential_free_threshold": free,
        "ceiling_threshold": ceiling_overall,
        "fpir_ceiling": ceiling,
        "fpir_ceiling_one_in": None if ceiling is None else 1 / ceiling,
        "nonmated_searches_needed_for_ceiling": needed,
        "operating_threshold": operating_basis(analyses)[0],
        "operating_basis": operating_basis(analyses)[1],
        "provisional_threshold": _highest([a.provisional_threshold for a in analyses]),
        "reason": reason,
    }


def _provisional_text(analyses: Sequence[WatchlistAnalysis]) -> str:
    provisional = _highest([a.provisional_threshold for a in analyses])
    if provisional is None:
        return "."
    return (
        f"; the lowest at which, in addition, the observed FPIR is below the ceiling is {provisional:.2f} "
        "(provisional: the figures below are read there, but the evidence does not show the ceiling is met)."
    )


def _review_doc(review: Review | None) -> dict[str, str] | None:
    if review is None:
        return None
    return {"verdict": review.verdict, "reviewer": review.reviewer, "reason": review.reason}


def _pair_doc(pair: Pair, enrolled: dict[str, tuple[ImageRef, ...]]) -> dict[str, Any]:
    listed = enrolled.get(pair.listed_identity, ())
    return {
        "probe_dataset": pair.probe[0],
        "probe_image": pair.probe[1],
        "listed_identity": pair.listed_identity,
        "listed_image": list(listed[0]) if listed else None,
        "score": pair.score,
        "rank": pair.rank,
        "review": _review_doc(pair.review),
    }


def _variant(analysis: WatchlistAnalysis, threshold: float | None) -> dict[str, Any]:
    row = next((r for r in analysis.rows if r.threshold == threshold), None)
    return {
        "nonmated_searches": len(analysis.run.nonmated),
        "recommended_threshold": analysis.recommended_threshold,
        "differential_free_threshold": analysis.differential_free_threshold,
        "at_threshold": None
        if row is None
        else {
            "threshold": row.threshold,
            "fpir": _rate(row.fpir),
            "tpir": _rate(row.tpir),
            "significant_fpir_differential": row.significant_by_rate.get("fpir"),
        },
    }


def _audit_doc(audit: AuditInputs, operating: float | None) -> dict[str, Any]:
    watchlists = []
    for w in audit.watchlists:
        a = w.audit
        enrolled = w.reviewed.run.enrolled
        at = a.concentration_threshold
        nonmated = w.reviewed.run.nonmated
        shares = [] if at is None else attribute_concentration(nonmated, at, audit.traits)
        top = a.identity_concentration
        # Few false positives at the operating threshold show no pattern: also read where there are many.
        many = next(
            (r.threshold for r in sorted(w.reviewed.rows, key=lambda r: -r.threshold) if r.fpir.errors >= 30),
            None,
        )
        shares_many = (
            [] if many is None or not shares else attribute_concentration(nonmated, many, audit.traits)
        )
        fp_many = 0 if many is None else int((nonmated.top_scores >= many).sum())
        hits_many: dict[str, int] = {}
        if many is not None:
            for subject in nonmated.alerted_subjects(many):
                if subject is not None:
                    hits_many[subject] = hits_many.get(subject, 0) + 1
        top_many = sorted(hits_many.items(), key=lambda kv: (-kv[1], kv[0]))
        watchlists.append(
            {
                "size": a.size,
                "median_mated_score": _finite(a.median_mated_score),
                "nonmated_above_median_mated": a.above_median_mated,
                "suspect_score": _finite(a.suspect_score),
                "suspected_searches": int(a.suspected_searches.sum()),
                "unreviewed_above_operating": a.unreviewed_above_operating,
                "excluded_by_review": a.excluded,
                "pairs_total": a.pairs_total,
                "pairs": [_pair_doc(p, enrolled) for p in a.pairs],
                "variants": {
                    "as_drawn": _variant(w.as_drawn, operating),
                    "reviewed": _variant(w.reviewed, operating),
                    "without_suspects": _variant(w.without_suspects, operating),
                },
                "identity_concentration": {
                    "threshold": at,
                    "false_positives": a.false_positives,
                    "identities_hit": len(top),
                    "listed_identities": len(enrolled),
                    "top": [{"identity": who, "false_positives": n} for who, n in top[:15]],
                    "top5_share": (sum(n for _, n in top[:5]) / a.false_positives)
                    if a.false_positives
                    else None,
                    "many_threshold": many,
                    "many_false_positives": fp_many,
                    "many_identities_hit": len(top_many),
                    "many_top": [{"identity": who, "false_positives": n} for who, n in top_many[:15]],
                    "many_top5_share": (sum(n for _, n in top_many[:5]) / fp_many) if fp_many else None,
                },
                "attribute_concentration": [
                    {
                        "attribute": x.attribute,
                        "value": x.value,
                        "searches": x.searches,
                        "false_positives": x.false_positives,
                        "share_of_searches": _finite(x.share_of_searches(len(w.reviewed.run.nonmated))),
                        "share_of_false_positives": (x.false_positives / a.false_positives)
                        if a.false_positives
                        else None,
                        "false_positives_many": m.false_positives if m else None,
                        "share_of_false_positives_many": (m.false_positives / fp_many)
                        if m and fp_many
                        else None,
                    }
                    for x, m in zip(shares, shares_many or [None] * len(shares), strict=True)
                ],
            }
        )
    largest = max(audit.watchlists, key=lambda w: w.audit.size, default=None)
    return {
        "exclusions_file": audit.exclusions_file,
        "reviews": len(audit.reviews),
        "reviews_same": sum(1 for r in audit.reviews if r.verdict == "same"),
        "reviews_different": sum(1 for r in audit.reviews if r.verdict == "different"),
        "unknown_reviews": [
            {
                "probe_dataset": r.probe_dataset,
                "probe_image": r.probe_image,
                "listed_identity": r.listed_identity,
            }
            for r in audit.unknown_reviews
        ],
        "operating_threshold": operating,
        "unreviewed_above_operating": 0 if largest is None else largest.audit.unreviewed_above_operating,
        "watchlists": watchlists,
        "near_duplicates": {
            "min_score": audit.duplicate_score,
            "total": audit.duplicates_total,
            "pairs": [
                {
                    "first": list(d.first),
                    "second": list(d.second),
                    "first_identity": d.first_identity,
                    "second_identity": d.second_identity,
                    "score": d.score,
                }
                for d in audit.duplicates
            ],
        },
    }


def _fusion_doc(study: FusionStudy) -> dict[str, Any]:
    """The four-way fusion study: each variant's rates at the target FPIR's threshold and at the operating
    threshold, overall and per group, in the watchlists' row format (`_row`)."""
    draw = study.draw
    return {
        "watchlist_size": draw.size,
        "mated_identities": len(draw.mated),
        "real_filler": draw.size - len(draw.mated),
        "enrolment_images": study.enrolment_images,
        "probe_samples": study.probe_samples,
        "support_margin": study.support_margin,
        "target_fpir": study.target_fpir,
        "operating_threshold": study.operating_threshold,
        "nonmated_passages": len(draw.nonmated),
        "multi_face_nonmated_passages": sum(len(p.faces) > 1 for p in draw.nonmated),
        "excluded_passages": draw.excluded_passages,
        "variants": [
            {
                "name": v.name,
                "enrolment_images": v.enrolment_images,
                "probe_samples": v.probe_samples,
                "enrolled_images": v.run.enrolled_images,
                "mated_searches": len(v.run.mated),
                "nonmated_searches": len(v.run.nonmated),
                "threshold_at_target_fpir": v.threshold_at_target,
                "at_target_fpir": _row(v.at_target),
                "at_operating_threshold": None if v.at_operating is None else _row(v.at_operating),
            }
            for v in study.variants
        ],
    }


def _scaling_doc(summary: SizeSummary) -> dict[str, Any]:
    return {
        "size": summary.size,
        "error": summary.error,
        "draws": [
            {
                "seed": d.seed,
                "mated_identities": d.mated_identities,
                "real_filler": d.real_filler,
                "synthetic_filler": d.synthetic_filler,
                "mated_searches": d.mated_searches,
                "nonmated_searches": d.nonmated_searches,
                "threshold": d.threshold,
                "tpir": _finite(d.tpir),
                "fpir": _finite(d.fpir),
                "false_positives": d.false_positives,
                "fpir_upper": _finite(d.fpir_upper),
                "recommended_threshold": d.recommended_threshold,
                "differential_free_threshold": d.differential_free_threshold,
                "nonmated_above_median_mated": d.nonmated_above_median_mated,
            }
            for d in summary.draws
        ],
        "spread": {
            name: summary.spread(name)
            for name in (
                "tpir",
                "fpir",
                "recommended_threshold",
                "differential_free_threshold",
                "nonmated_above_median_mated",
            )
        },
        "synthetic_filler": max((d.synthetic_filler for d in summary.draws), default=0),
    }


def _counts(values: np.ndarray) -> dict[str, int]:
    found: dict[str, int] = {}
    for v in values.tolist():
        found[str(v)] = found.get(str(v), 0) + 1
    return found


# -- files ----------------------------------------------------------------------------------------------


def write_report(inputs: ReportInputs, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    document = build_document(inputs)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(document, indent=1, allow_nan=False))
    for analysis in inputs.analyses:
        paths[f"npl_{analysis.run.size}"] = _write_npl_csv(
            analysis, out_dir / f"npl_table_n{analysis.run.size}.csv"
        )
        paths[f"groups_{analysis.run.size}"] = _write_groups_csv(
            analysis, out_dir / f"groups_n{analysis.run.size}.csv"
        )
    paths["fta"] = _write_fta_csv(inputs.acquisition, out_dir / "failure_to_acquire.csv")
    if document.get("audit"):
        paths["audit_pairs"] = _write_pairs_csv(document["audit"], out_dir / "audit_pairs.csv")
    plots = _plots(inputs)
    images = _thumbnails(document, inputs.audit.image_roots if inputs.audit else {})
    paths["html"].write_text(render_html(document, plots, images))
    paths["summary"] = out_dir / "summary.html"
    paths["summary"].write_text(render_html(document, plots, {}, template="summary.html.j2"))
    return paths


def _write_pairs_csv(audit: dict[str, Any], path: Path) -> Path:
    """Every listed pair, in the reviewed-exclusions file's columns (verdict, reviewer, reason to fill in)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["probe_dataset", "probe_image", "listed_identity", "verdict", "reviewer", "reason", "score",
             "rank", "watchlist_size", "listed_image"]
        )  # fmt: skip
        for w in audit["watchlists"]:
            for p in w["pairs"]:
                review = p["review"] or {}
                writer.writerow(
                    [p["probe_dataset"], p["probe_image"], p["listed_identity"], review.get("verdict", ""),
                     review.get("reviewer", ""), review.get("reason", ""), f"{p['score']:.4f}", p["rank"],
                     w["size"], "/".join(p["listed_image"] or [])]
                )  # fmt: skip
    return path


def _thumbnails(document: dict[str, Any], roots: dict[str, Path], height: int = 96) -> dict[str, str]:
    """Small inline JPEGs of the images a reviewer compares (research data, the report stays local)."""
    audit = document.get("audit")
    if not audit or not roots:
        return {}
    import cv2

    refs: set[tuple[str, str]] = set()
    if audit["watchlists"]:
        largest = max(audit["watchlists"], key=lambda w: w["size"])
        for p in largest["pairs"]:
            refs.add((p["probe_dataset"], p["probe_image"]))
            if p["listed_image"]:
                refs.add((p["listed_image"][0], p["listed_image"][1]))
    for d in audit["near_duplicates"]["pairs"]:
        refs.add(tuple(d["first"]))  # type: ignore[arg-type]
        refs.add(tuple(d["second"]))  # type: ignore[arg-type]
    images: dict[str, str] = {}
    for dataset, key in sorted(refs):
        root = roots.get(dataset)
        if root is None:
            continue
        image = cv2.imread(str(root / key), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) == 0:
            continue
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            images[f"{dataset}/{key}"] = base64.b64encode(encoded.tobytes()).decode()
    return images


def _write_npl_csv(analysis: WatchlistAnalysis, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["threshold", "tpir", "tpir_low", "tpir_high", "fpir", "fpir_low", "fpir_high",
             "false_positive_one_in",
             "false_positives", "nonmated_searches", "hits", "mated_searches", "significant_differential",
             "significant_fpir_differential", "significant_fnir_differential",
             "min_adjusted_p_fpir", "min_adjusted_p_fnir"]
        )  # fmt: skip
        for r in analysis.rows:
            writer.writerow(
                [r.threshold, r.tpir.value, *r.tpir.wilson, r.fpir.value, *r.fpir.wilson,
                 one_in(r.fpir.value),
                 r.fpir.errors, r.fpir.searches, r.tpir.errors, r.tpir.searches, r.significant,
                 r.significant_by_rate["fpir"], r.significant_by_rate["fnir"],
                 r.min_adjusted_p("fpir"), r.min_adjusted_p("fnir")]
            )  # fmt: skip
    return path


def _write_groups_csv(analysis: WatchlistAnalysis, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["threshold", "attribute", "group", "tested", "fpir", "fpir_low", "fpir_high", "false_positives",
             "nonmated_searches", "fnir", "fnir_low", "fnir_high", "misses", "mated_searches"]
        )  # fmt: skip
        for r in analysis.rows:
            for g in r.groups:
                writer.writerow(
                    [r.threshold, g.attribute, g.group or "unknown", g.tested, g.fpir.value, *g.fpir.wilson,
                     g.fpir.errors, g.fpir.searches, g.fnir.value, *g.fnir.wilson, g.fnir.errors,
                     g.fnir.searches]
                )  # fmt: skip
    return path


def _write_fta_csv(groups: Sequence[AcquisitionGroup], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["dataset", "attribute", "group", "fta", "low", "high", "failures", "images", "reasons"]
        )
        for g in groups:
            writer.writerow(
                [g.dataset, g.attribute, g.group or "unknown", g.rate.value, *g.rate.wilson, g.rate.errors,
                 g.rate.searches, ";".join(f"{reason}={n}" for reason, n in g.reasons.items())]
            )  # fmt: skip
    return path


# -- plots ----------------------------------------------------------------------------------------------


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(inputs: ReportInputs) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for analysis in inputs.analyses:
        det = analysis.det
        keep = (det.fpir > 0) & (det.fnir > 0)
        if keep.any():
            axes.plot(det.fpir[keep], det.fnir[keep], label=f"N = {analysis.run.size}")
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="FPIR (passers-by wrongly alerted)",
        ylabel="FNIR (listed people missed)",
        title="DET: open-set, rank 1 (lower left is better)",
    )
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    plots["det"] = _png(figure)

    figure, axes = plt.subplots(figsize=(6, 4.5))
    sizes = [a.run.size for a in inputs.analyses]
    thresholds = [r.threshold for r in inputs.analyses[0].rows] if inputs.analyses else []
    for t in thresholds[:: max(1, len(thresholds) // 5)]:
        values = [next(r.fpir.value for r in a.rows if r.threshold == t) for a in inputs.analyses]
        points = [(n, v) for n, v in zip(sizes, values, strict=True) if v > 0]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=f"T = {t:.2f}")
    axes.set(
        xscale="log", yscale="log", xlabel="watchlist size N", ylabel="FPIR", title="FPIR vs watchlist size"
    )
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    plots["scaling"] = _png(figure)

    operating = operating_threshold_of(inputs.analyses)
    ceiling = inputs.statistics.get("fpir_ceiling")
    for analysis in inputs.analyses:
        for rate in ("fpir", "fnir"):
            figure = _group_figure(analysis, rate, operating)
            if figure is not None:
                plots[f"{rate}_groups_{analysis.run.size}"] = _png(figure)
        if operating is not None:
            figure = _bars_figure(analysis, operating, ceiling)
            if figure is not None:
                plots[f"bars_{analysis.run.size}"] = _png(figure)
        figure = _group_det_figure(analysis, operating)
        if figure is not None:
            plots[f"det_groups_{analysis.run.size}"] = _png(figure)
    return plots


def _bars_figure(analysis: WatchlistAnalysis, threshold: float, ceiling: float | None) -> Any:
    """FPIR and FNIR per group at the operating threshold, with Wilson intervals, three panels a row."""
    row = next((r for r in analysis.rows if r.threshold == threshold), None)
    if row is None:
        return None
    panels = []
    for rate in ("fpir", "fnir"):
        for attribute in dict.fromkeys(g.attribute for g in row.groups):
            groups = [
                g
                for g in row.groups
                if g.attribute == attribute and g.group != UNKNOWN and getattr(g, rate).searches
            ]
            if groups:
                panels.append((rate, attribute, groups))
    if not panels:
        return None
    figure, panel_axes = _panel_grid(len(panels), panel_height=3.3)
    for axes, (rate, attribute, groups) in zip(panel_axes, panels, strict=True):
        rates = [getattr(g, rate) for g in groups]
        values = [r.value for r in rates]
        low = [max(0.0, v - r.wilson[0]) for v, r in zip(values, rates, strict=True)]
        high = [max(0.0, r.wilson[1] - v) for v, r in zip(values, rates, strict=True)]
        labels = [f"{g.group} (n={r.searches:,})" for g, r in zip(groups, rates, strict=True)]
        colours = ["#4a7ab0" if g.tested else "#aaaaaa" for g in groups]
        axes.barh(range(len(groups)), values, xerr=[low, high], color=colours, capsize=3)
        axes.set_yticks(range(len(groups)), labels, fontsize="x-small")
        axes.invert_yaxis()
        if rate == "fpir" and ceiling is not None:
            axes.axvline(ceiling, color="red", linestyle=":", linewidth=1, label="FPIR ceiling")
            axes.legend(fontsize="xx-small")
        axes.set_title(f"{rate.upper()} by {attribute}", fontsize="small")
        axes.tick_params(axis="x", labelsize="x-small")
        axes.grid(True, axis="x", alpha=0.3)
    figure.suptitle(
        f"Per group at the operating threshold T = {threshold:.2f}, watchlist of {analysis.run.size:,}: "
        "95% Wilson intervals (grey: not tested)"
    )
    return figure


def _group_det_figure(analysis: WatchlistAnalysis, threshold: float | None) -> Any:
    """DET per group for attributes with both mated and non-mated searches; the operating point marked."""
    from evaluation.metrics import det_curve

    run = analysis.run
    ranks, scores = run.mated.mated_ranks_and_scores()
    top = run.nonmated.top_scores
    panels = []
    for attribute in run.nonmated.attributes:
        mated_groups = run.mated.attributes.get(attribute)
        if mated_groups is None or attribute == SOURCE_ATTRIBUTE:
            continue
        groups = [
            g
            for g in sorted(set(mated_groups.tolist()) & set(run.nonmated.attributes[attribute].tolist()))
            if g != UNKNOWN
        ]
        if groups:
            panels.append((attribute, groups))
    if not panels:
        return None
    figure, panel_axes = _panel_grid(len(panels), panel_height=4.2)
    for axes, (attribute, groups) in zip(panel_axes, panels, strict=True):
        drawn = False
        for group in groups:
            in_mated = run.mated.attributes[attribute] == group
            in_non = run.nonmated.attributes[attribute] == group
            det = det_curve(ranks[in_mated], scores[in_mated], top[in_non])
            keep = (det.fpir > 0) & (det.fnir > 0)
            if not keep.any():
                continue
            line = axes.plot(
                det.fpir[keep], det.fnir[keep], label=f"{group} ({int(in_mated.sum())}/{int(in_non.sum())})"
            )
            drawn = True
            if threshold is not None:
                point = det_curve(ranks[in_mated], scores[in_mated], top[in_non], np.array([threshold]))
                if point.fpir[0] > 0 and point.fnir[0] > 0:
                    axes.plot(point.fpir, point.fnir, marker="o", color=line[0].get_color())
        axes.set(
            xscale="log" if drawn else "linear",
            yscale="log" if drawn else "linear",
            xlabel="FPIR",
            ylabel="FNIR",
            title=f"DET by {attribute} (mated/non-mated)",
        )
        axes.grid(True, which="both", alpha=0.3)
        if drawn:
            axes.legend(fontsize="x-small")
    label = f"; dots: T = {threshold:.2f}" if threshold is not None else ""
    figure.suptitle(f"DET per group, watchlist of {run.size:,}{label}")
    return figure


RATE_NAMES = {
    "fpir": "FPIR: passers-by wrongly alerted",
    "fnir": "FNIR: listed people missed",
}


def _group_figure(analysis: WatchlistAnalysis, rate: str, recommended: float | None) -> Any:
    """One panel per attribute with data for this rate, three to a row: readable at report width."""
    first = analysis.rows[0]
    panels = []
    for attribute in dict.fromkeys(g.attribute for g in first.groups):
        groups = [g for g in first.groups if g.attribute == attribute and g.group != UNKNOWN]
        if any(getattr(g, rate).searches for g in groups):
            panels.append((attribute, [g.group for g in groups if getattr(g, rate).searches]))
    if not panels:
        return None
    figure, panel_axes = _panel_grid(len(panels), panel_height=4.2)
    for axes, (attribute, groups) in zip(panel_axes, panels, strict=True):
        drawn = False
        for group in groups:
            xs, ys, searches = [], [], 0
            for r in analysis.rows:
                g = next(x for x in r.groups if x.attribute == attribute and x.group == group)
                value, searches = getattr(g, rate).value, getattr(g, rate).searches
                if value > 0:
                    xs.append(r.threshold)
                    ys.append(value)
            axes.plot(xs, ys, marker=".", label=f"{group} (n={searches:,})")
            drawn = drawn or bool(ys)
        if recommended is not None:
            axes.axvline(
                recommended, color="green", linestyle="--", linewidth=1, label=f"T = {recommended:.2f}"
            )
        # A log axis with nothing above zero on it cannot be drawn (every group's rate 0 at every threshold).
        axes.set(
            yscale="log" if drawn else "linear",
            xlabel="threshold",
            ylabel=f"{rate.upper()} (log scale)" if drawn else f"{rate.upper()} (0 at every threshold)",
            title=f"by {attribute}",
        )
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="x-small", ncol=2 if len(groups) > 6 else 1)
    figure.suptitle(f"{RATE_NAMES[rate]}, watchlist of {analysis.run.size:,} (zero rates not drawn)")
    return figure


def render_html(
    document: dict[str, Any],
    plots: dict[str, str],
    images: dict[str, str] | None = None,
    template: str = "report.html.j2",
) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True
    )
    environment.filters["pct"] = _pct
    environment.filters["one_in"] = _one_in_text
    environment.filters["pvalue"] = _pvalue
    return environment.get_template(template).render(doc=document, plots=plots, images=images or {})


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _one_in_text(value: float | None) -> str:
    if value is None:
        return "none observed"
    return f"1 in {value:,.0f}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value >= 1e-4 else "<0.0001"


# -- markdown (for docs and pull requests) ------------------------------------------------------------


def markdown_summary(document: dict[str, Any], group_thresholds: Sequence[float] = ()) -> str:
    """The NPL-style table per watchlist and per-group rates, as Markdown, from a report.json document."""
    lines = [
        f"Model `{document['model_id']}`; data `{document['dataset_fingerprint'][:23]}...`; "
        f"recommended threshold: **{_fmt_threshold(document['recommended_threshold'])}** "
        f"(alpha {document['statistics']['alpha']}, {document['statistics']['correction']} correction per "
        f"rate and threshold; the recommendation rests on: "
        f"{', '.join(document['statistics']['recommend_on'])}).",
        "",
    ]
    for w in document["watchlists"]:
        synthetic = f", {w['synthetic_filler']} SYNTHETIC filler" if w["synthetic_filler"] else ""
        lines += [
            f"#### Watchlist of {w['size']:,} ({w['mated_identities']} searched-for people, "
            f"{w['real_filler']} real filler{synthetic}; "
            f"{w['mated_searches']:,} mated and {w['nonmated_searches']:,} non-mated searches; "
            f"recommended threshold {_fmt_threshold(w['recommended_threshold'])})",
            "",
            "| threshold | TPIR [95% CI] | FPIR [95% CI] | false positives per passer-by | "
            "significant FPIR differential (adj. p) | significant FNIR differential (adj. p) |",
            "|---|---|---|---|---|---|",
        ]
        for r in w["thresholds"]:
            fp = (
                f"{_one_in_text(r['false_positive_one_in'])} ({r['fpir']['count']}/{r['fpir']['searches']:,})"
            )
            by_rate = r["significant_by_rate"]
            fpir_sig = f"{'yes' if by_rate['fpir'] else 'no'} ({_pvalue(r['min_adjusted_p']['fpir'])})"
            fnir_sig = f"{'yes' if by_rate['fnir'] else 'no'} ({_pvalue(r['min_adjusted_p']['fnir'])})"
            lines.append(
                f"| {r['threshold']:.2f} | {_pct(r['tpir']['value'], 1)} [{_pct(r['tpir']['wilson'][0], 1)}, "
                f"{_pct(r['tpir']['wilson'][1], 1)}] | {_pct(r['fpir']['value'], 3)} "
                f"[{_pct(r['fpir']['wilson'][0], 3)}, {_pct(r['fpir']['wilson'][1], 3)}] | "
                f"{fp} | {fpir_sig} | {fnir_sig} |"
            )
        lines.append("")
        wanted = list(group_thresholds) or [t for t in (w["recommended_threshold"],) if t is not None]
        for threshold in wanted:
            row = next((r for r in w["thresholds"] if abs(r["threshold"] - threshold) < 1e-9), None)
            if row is None:
                continue
            lines += [
                f"Per group at threshold {threshold:.2f} (N = {w['size']:,}):",
                "",
                "| attribute | group | FPIR [Wilson 95%] | FP / searches | FNIR [Wilson 95%] | "
                "FNIR [bootstrap by person] | misses / searches |",
                "|---|---|---|---|---|---|---|",
            ]
            for g in row["groups"]:
                boot = g["fnir"].get("bootstrap_by_person")
                boot_text = (
                    f"[{_pct(boot[0], 1)}, {_pct(boot[1], 1)}]" if boot and boot[0] is not None else ""
                )
                fpir_wilson = f"[{_pct(g['fpir']['wilson'][0], 3)}, {_pct(g['fpir']['wilson'][1], 3)}]"
                lines.append(
                    f"| {g['attribute']} | {g['group']}{'' if g['tested'] else ' (not tested)'} | "
                    f"{_pct(g['fpir']['value'], 3)} {fpir_wilson} | "
                    f"{g['fpir']['count']}/{g['fpir']['searches']:,} | "
                    f"{_pct(g['fnir']['value'], 1)} [{_pct(g['fnir']['wilson'][0], 1)}, "
                    f"{_pct(g['fnir']['wilson'][1], 1)}] | "
                    f"{boot_text} | "
                    f"{g['fnir']['count']}/{g['fnir']['searches']:,} |"
                )
            lines.append("")
    lines += _markdown_audit(document)
    lines += _markdown_scaling(document)
    lines += _markdown_fusion(document)
    lines += _markdown_fta(document)
    return "\n".join(lines)


def _markdown_audit(document: dict[str, Any]) -> list[str]:
    audit = document.get("audit")
    if not audit:
        return []
    recommendation = document.get("recommendation") or {}
    at = audit["operating_threshold"]
    lines = [
        f"Recommendation: {recommendation.get('reason', '')}",
        "",
        f"Ground-truth audit ({audit['reviews']} reviewed pairs: {audit['reviews_same']} same person, "
        f"{audit['reviews_different']} different; {len(audit['unknown_reviews'])} naming unknown images or "
        f"identities; {audit['near_duplicates']['total']} near-duplicate pairs at cosine >= "
        f"{audit['near_duplicates']['min_score']}); rates at T = {_fmt_threshold(at)}:",
        "",
        "| N | median mated score | non-mated >= it | excluded by review | unreviewed >= T | non-mated set | "
        "searches | FP at T | FPIR at T [Clopper-Pearson] | recommended | differential-free |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"as_drawn": "as drawn", "reviewed": "after review", "without_suspects": "also without suspects"}
    for w in audit["watchlists"]:
        for key, label in names.items():
            v = w["variants"][key]
            row = v["at_threshold"]
            fpir = (
                f"{_pct(row['fpir']['value'], 3)} [{_pct(row['fpir']['clopper_pearson'][0], 3)}, "
                f"{_pct(row['fpir']['clopper_pearson'][1], 3)}]"
                if row
                else "n/a"
            )
            first = key == "as_drawn"
            lead = (
                [_num(w["median_mated_score"]), w["nonmated_above_median_mated"], w["excluded_by_review"],
                 w["unreviewed_above_operating"]]
                if first
                else ["", "", "", ""]
            )  # fmt: skip
            cells = [
                f"{w['size']:,}", *map(str, lead), label, f"{v['nonmated_searches']:,}",
                str(row["fpir"]["count"]) if row else "n/a", fpir, _fmt_threshold(v["recommended_threshold"]),
                _fmt_threshold(v["differential_free_threshold"]),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _markdown_scaling(document: dict[str, Any]) -> list[str]:
    scaling = document.get("scaling")
    if not scaling:
        return []
    at = (document.get("recommendation") or {}).get("operating_threshold")
    lines = [
        f"Watchlist-size scaling at T = {_fmt_threshold(at)} (mean ± sd [min, max] over seeded draws):",
        "",
        "| N | draws | real / synthetic filler | non-mated searches | TPIR | FPIR | recommended per draw | "
        "differential-free per draw | non-mated >= median mated score, per draw |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in scaling:
        if x["error"]:
            lines.append(f"| {x['size']:,} | not drawn: {x['error']} |  |  |  |  |  |  |  |")
            continue
        t, f = x["spread"]["tpir"], x["spread"]["fpir"]
        first = x["draws"][0] if x["draws"] else {}
        synthetic = f" **{x['synthetic_filler']:,} SYNTHETIC**" if x["synthetic_filler"] else " 0 synthetic"
        tpir = f"{_pct(t['mean'], 1)} ± {_pct(t['sd'], 1)} [{_pct(t['min'], 1)}, {_pct(t['max'], 1)}]"
        fpir = f"{_pct(f['mean'], 3)} ± {_pct(f['sd'], 3)} [{_pct(f['min'], 3)}, {_pct(f['max'], 3)}]"
        per_draw = ", ".join(_fmt_threshold(d["recommended_threshold"]) for d in x["draws"])
        free = ", ".join(_fmt_threshold(d["differential_free_threshold"]) for d in x["draws"])
        above = ", ".join(str(d.get("nonmated_above_median_mated", "")) for d in x["draws"])
        lines.append(
            f"| {x['size']:,} | {len(x['draws'])} | {first.get('real_filler', 0):,} real,{synthetic} | "
            f"{first.get('nonmated_searches', 0):,} | {tpir} | {fpir} | {per_draw} | {free} | {above} |"
        )
    return [*lines, ""]


def _tpir_of_group(group: dict[str, Any], interval: str = "wilson") -> str:
    """A group's TPIR at rank 1 (1 - FNIR) with its interval, in percent."""
    fnir = group["fnir"]
    bounds = fnir.get(interval) or [None, None]
    if fnir["value"] is None or bounds[0] is None:
        return "n/a"
    return f"{_pct(1 - fnir['value'], 1)} [{_pct(1 - bounds[1], 1)}, {_pct(1 - bounds[0], 1)}]"


def _rate_text(rate: dict[str, Any], digits: int, interval: str = "wilson") -> str:
    if rate["value"] is None:
        return "n/a"
    low, high = rate.get(interval) or rate["wilson"]
    return f"{_pct(rate['value'], digits)} [{_pct(low, digits)}, {_pct(high, digits)}]"


def _markdown_fusion(document: dict[str, Any]) -> list[str]:
    study = document.get("fusion_study")
    if not study:
        return []
    target, at = study["target_fpir"], study["operating_threshold"]
    lines = [
        f"Fusion study, N = {study['watchlist_size']:,} ({study['mated_identities']} searched-for people, "
        f"{study['real_filler']} real filler): enrolment 1 or {study['enrolment_images']} images (mean "
        f"template) x probe 1 image or {study['probe_samples']} images as one track (support margin "
        f"{study['support_margin']:g}); {study['nonmated_passages']:,} non-mated passages "
        f"({study['multi_face_nonmated_passages']:,} of several faces; {study['excluded_passages']} "
        f"excluded by review). TPIR with Wilson [and bootstrap-by-person] 95% intervals; FPIR with "
        "Clopper-Pearson:",
        "",
        f"| variant | mated / non-mated searches | threshold at FPIR {_pct(target, 1)} | TPIR there | "
        f"FPIR there | TPIR at {_fmt_threshold(at)} | FPIR at {_fmt_threshold(at)} |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in study["variants"]:
        row, op = v["at_target_fpir"], v["at_operating_threshold"]
        boot = row["tpir"].get("bootstrap_by_person")
        boot_text = f" [{_pct(boot[0], 1)}, {_pct(boot[1], 1)}]" if boot and boot[0] is not None else ""
        lines.append(
            f"| {v['name']} | {v['mated_searches']:,} / {v['nonmated_searches']:,} | "
            f"{v['threshold_at_target_fpir']:.3f} | {_rate_text(row['tpir'], 1)}{boot_text} | "
            f"{_rate_text(row['fpir'], 3, 'clopper_pearson')} | "
            f"{_rate_text(op['tpir'], 1) if op else 'n/a'} | "
            f"{_rate_text(op['fpir'], 3, 'clopper_pearson') if op else 'n/a'} |"
        )
    for key, where in (
        ("at_target_fpir", f"its own FPIR-{_pct(target, 1)} threshold"),
        ("at_operating_threshold", f"{_fmt_threshold(at)}"),
    ):
        if any(v[key] is None for v in study["variants"]):
            continue
        lines += [
            "",
            f"Per group, each variant at {where}: TPIR (= 1 - FNIR at rank 1) [Wilson 95%] over mated "
            "searches; FPIR [Clopper-Pearson 95%] over non-mated searches; searches in parentheses, - "
            "where there are none:",
            "",
            "| attribute | group | " + " | ".join(v["name"] for v in study["variants"]) + " |",
            "|---|---|" + "---|" * len(study["variants"]),
        ]
        first = study["variants"][0][key]["groups"]
        for g in first:
            if INTERSECTION in g["attribute"] or g["group"] == "unknown":
                continue
            cells = []
            for v in study["variants"]:
                x = next(
                    (
                        y
                        for y in v[key]["groups"]
                        if (y["attribute"], y["group"]) == (g["attribute"], g["group"])
                    ),
                    None,
                )
                if x is None:
                    cells.append("n/a")
                    continue
                tpir = f"{_tpir_of_group(x)} ({x['fnir']['searches']:,})" if x["fnir"]["searches"] else "-"
                fpir = (
                    f"{_rate_text(x['fpir'], 2, 'clopper_pearson')} ({x['fpir']['searches']:,})"
                    if x["fpir"]["searches"]
                    else "-"
                )
                cells.append(f"{tpir}; {fpir}")
            lines.append(f"| {g['attribute']} | {g['group']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _markdown_fta(document: dict[str, Any]) -> list[str]:
    """Failure to acquire per dataset and group, with reasons; intersections left to the report."""
    rows = [g for g in document.get("failure_to_acquire", []) if INTERSECTION not in g["attribute"]]
    if not rows:
        return []
    gate = document.get("quality_gate", {}).get("description", "none")
    lines = [
        f"Failure to acquire (quality gate: {gate}):",
        "",
        "| dataset | attribute | group | FTA [Wilson 95%] | failures / images | reasons |",
        "|---|---|---|---|---|---|",
    ]
    for g in rows:
        reasons = ", ".join(f"{reason} {n}" for reason, n in g.get("reasons", {}).items())
        lines.append(
            f"| {g['dataset']} | {g['attribute']} | {g['group']} | {_pct(g['value'], 2)} "
            f"[{_pct(g['wilson'][0], 2)}, {_pct(g['wilson'][1], 2)}] | {g['count']}/{g['searches']:,} | "
            f"{reasons} |"
        )
    return [*lines, ""]


def _fmt_threshold(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def _panel_grid(count: int, panel_height: float) -> tuple[Any, list[Any]]:
    """A figure of `count` panels, up to three a row; the axes of unused cells are hidden."""
    import matplotlib.pyplot as plt

    columns = min(3, count)
    rows = -(-count // columns)
    figure, all_axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns, panel_height * rows), squeeze=False, constrained_layout=True
    )
    for axes in all_axes.flat[count:]:
        axes.set_visible(False)
    return figure, list(all_axes.flat[:count])
