"""Trends (`/ui/trends`): server-rendered SVG charts of the weekly aggregates in
`registry.service.read.trends`, each linking to the list behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from registry.db.engine import unit_of_work
from registry.service import decide
from registry.service.read import trends as read_trends
from registry.service.read.common import SEVERITIES
from registry.web._plumbing import _int, _policy_set, _reader, _registry, page, render
from registry.web.svg import Series, bar_chart

router = APIRouter(include_in_schema=False)

SEVERITY_COLOURS = {
    "info": "#9aa5b1",
    "low": "#6c8ebf",
    "medium": "#d6b656",
    "high": "#e07b39",
    "critical": "#b3261e",
}
OVERVIEW_WEEKS = 8
ALLOWED_COLOUR = "#3a8f4b"
DENIED_COLOUR = "#b3261e"


def duration(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    return f"{hours:.1f} hours"


def _label(day: date) -> str:
    return day.strftime("%m-%d")


@dataclass(frozen=True, slots=True)
class Charts:
    findings: Markup
    decisions: list[tuple[str, Markup]]  # (environment, chart)
    quarantine: Markup
    exceptions: Markup


def findings_chart(t: read_trends.Trends, chart_id: str = "chart-findings") -> Markup:
    labels = [_label(d) for d in t.weeks]
    return bar_chart(
        chart_id=chart_id,
        title="Scans with findings, by worst severity, per week",
        description=f"{sum(sum(v) for v in t.findings.values())} scans over {len(labels)} weeks "
        "that found something, stacked by the worst severity each found.",
        labels=labels,
        series=[
            Series(
                s,
                SEVERITY_COLOURS.get(s, "#777"),
                t.findings[s],
                "/ui/findings?" + urlencode({"severity": s}),
            )
            for s in reversed(SEVERITIES)
        ],
        unit="scans",
    )


def overview_chart(session: Session, environments: Sequence[str], now: datetime) -> Markup:
    """The overview's small chart: findings by severity over the last 8 weeks."""
    t = read_trends.trends(session, environments, now=now, weeks=OVERVIEW_WEEKS)
    return findings_chart(t, "chart-overview-findings")


def charts(t: read_trends.Trends) -> Charts:
    labels = [_label(d) for d in t.weeks]
    findings = findings_chart(t)
    decisions = []
    for env, (allowed, denied) in t.decisions.items():
        decisions.append(
            (
                env,
                bar_chart(
                    chart_id=f"chart-decisions-{env}",
                    title=f"Admissions and denials in {env}, per week",
                    description=f"Recorded decisions in {env}: {sum(allowed)} allowed, "
                    f"{sum(denied)} denied over {len(labels)} weeks.",
                    labels=labels,
                    series=[
                        Series(
                            "allowed",
                            ALLOWED_COLOUR,
                            allowed,
                            "/ui/models?" + urlencode({"env": env, "decision": "allowed"}),
                        ),
                        Series(
                            "denied",
                            DENIED_COLOUR,
                            denied,
                            "/ui/models?" + urlencode({"env": env, "decision": "denied"}),
                        ),
                    ],
                    unit="decisions",
                ),
            )
        )
    mean = "none quarantined" if t.mean_hours is None else f"{duration(t.mean_hours)} on average"
    quarantine = bar_chart(
        chart_id="chart-quarantine",
        title="Mean time from a critical finding to quarantine, per week of the quarantine",
        description=f"{sum(t.quarantined_critical)} checkpoints with a critical finding were "
        f"quarantined afterwards, {mean}; {t.unquarantined_critical} were not.",
        labels=labels,
        series=[Series("mean hours", "#5b4b8a", t.quarantine_hours, "/ui/quarantines")],
        unit="hours",
    )
    ahead = [_label(d) for d in t.ahead]
    exceptions = bar_chart(
        chart_id="chart-exceptions",
        title="Exceptions granted and expiring, per week",
        description=f"{sum(t.exceptions_granted)} exceptions granted and "
        f"{sum(t.exceptions_expiring)} expiring (not revoked), including the "
        f"{read_trends.AHEAD_WEEKS} weeks ahead.",
        labels=ahead,
        series=[
            Series("granted", "#2f6f9f", t.exceptions_granted, "/ui/exceptions"),
            Series("expiring", "#d6b656", t.exceptions_expiring, "/ui/exceptions"),
        ],
        unit="exceptions",
    )
    return Charts(
        findings=findings, decisions=decisions, quarantine=quarantine, exceptions=exceptions
    )


@router.get("/ui/trends")
@page
def trends_page(request: Request) -> Response:
    caller = _reader(request)
    weeks = _int(
        request.query_params.get("weeks"), read_trends.DEFAULT_WEEKS, hi=read_trends.MAX_WEEKS
    )
    envs = decide.environments(_policy_set(request))
    with unit_of_work(_registry(request).sessions) as s:
        t = read_trends.trends(s, envs, now=datetime.now(UTC), weeks=weeks)
    return render(
        request, "trends.html", caller, t=t, weeks=weeks, charts=charts(t), duration=duration
    )
