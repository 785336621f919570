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

from evaluation.analysis import AcquisitionGroup, Rate, ThresholdResult, WatchlistAnalysis
from evaluation.datasets import UNKNOWN, EmbeddedSet
from evaluation.metrics import one_in
from evaluation.protocol import INTERSECTION_JOIN as INTERSECTION
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


def dataset_fingerprint(embedded: Sequence[EmbeddedSet]) -> str:
    combined = "\n".join(sorted(e.fingerprint for e in embedded))
    return "sha256:" + hashlib.sha256(combined.encode()).hexdigest()


def recommended_overall(analyses: Sequence[WatchlistAnalysis]) -> float | None:
    """A threshold must hold for every watchlist size evaluated: the highest per-size recommendation."""
    values = [a.recommended_threshold for a in analyses]
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


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
        # The protocol searches with FaissFlatIndex (exact), like the matcher's default `matching.index`; the
        # equity gate accepts this evaluation only for windows matched with the same index type.
        "index_type": EXACT_INDEX,
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
    plots = _plots(inputs)
    paths["html"].write_text(render_html(document, plots))
    return paths


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

    recommended = recommended_overall(inputs.analyses)
    for analysis in inputs.analyses:
        for rate in ("fpir", "fnir"):
            figure = _group_figure(analysis, rate, recommended)
            if figure is not None:
                plots[f"{rate}_groups_{analysis.run.size}"] = _png(figure)
    return plots


RATE_NAMES = {
    "fpir": "FPIR: passers-by wrongly alerted",
    "fnir": "FNIR: listed people missed",
}


def _group_figure(analysis: WatchlistAnalysis, rate: str, recommended: float | None) -> Any:
    """One panel per attribute with data for this rate, three to a row: readable at report width."""
    import matplotlib.pyplot as plt

    first = analysis.rows[0]
    panels = []
    for attribute in dict.fromkeys(g.attribute for g in first.groups):
        groups = [g for g in first.groups if g.attribute == attribute and g.group != UNKNOWN]
        if any(getattr(g, rate).searches for g in groups):
            panels.append((attribute, [g.group for g in groups if getattr(g, rate).searches]))
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, all_axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns, 4.2 * rows), squeeze=False, constrained_layout=True
    )
    for axes in all_axes.flat[len(panels) :]:
        axes.set_visible(False)
    for axes, (attribute, groups) in zip(all_axes.flat, panels, strict=False):
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


def render_html(document: dict[str, Any], plots: dict[str, str]) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html", "j2"]), trim_blocks=True
    )
    environment.filters["pct"] = _pct
    environment.filters["one_in"] = _one_in_text
    environment.filters["pvalue"] = _pvalue
    return environment.get_template("report.html.j2").render(doc=document, plots=plots)


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
    lines += _markdown_fta(document)
    return "\n".join(lines)


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
