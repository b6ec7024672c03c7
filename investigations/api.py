"""The JSON API, version 1: investigations and the alerts that started them.

Both routers live here because the question they answer is the same, "what does Rootline
know about this incident?", and the alerts endpoint's point is to lead from a fingerprint
to its investigations. The webhook that receives alerts is alerts/api.py.
"""

from datetime import datetime

from django.conf import settings
from django.db.models import Prefetch
from django.http import Http404
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from accounts.auth import API_AUTH
from alerts.models import Alert
from alerts.schemas import ErrorOut
from investigations.models import Investigation

ALERTS_PAGE_DEFAULT = 50
ALERTS_PAGE_MAX = 500

router = Router(tags=["investigations"], auth=API_AUTH)
alerts_router = Router(tags=["alerts"], auth=API_AUTH)


class SuspectOut(BaseModel):
    """One ranked suspect as the signal scan stored it; keys beyond these are passed on.

    A pydantic model, not a ninja Schema: a Schema reads its input through attribute
    access and would drop the extra keys.
    """

    model_config = ConfigDict(extra="allow")

    service: str
    score: float
    evidence: list[dict] = []


class InvestigationOut(Schema):
    id: int
    kind: Investigation.Kind
    status: Investigation.Status
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    as_of: datetime | None = Field(description="no data after this time is read")
    error: str
    group_key: str = Field(description="the Alertmanager groupKey of its alerts")
    alerts: list[str] = Field(description="fingerprints of its alerts, in the order they fired")
    scope: dict = Field(description="label matchers, services and windows; {} until scoped")
    baseline_start: datetime | None
    incident_start: datetime | None
    incident_end: datetime | None
    suspects: list[SuspectOut] = Field(description="services ranked by the signal scan")
    report: dict | None
    report_text: str
    followups: list[dict] = Field(
        description="follow-up questions and their answers: question, status, answer, steps"
    )
    notifications: list[dict] = Field(
        description="the report's notifications: channel, target (host), status "
        "(pending, sent, failed), attempts, last_error, sent_at, next_attempt_at"
    )

    @staticmethod
    def resolve_alerts(investigation):
        return [alert.fingerprint for alert in investigation.alerts.all()]


class AlertOut(Schema):
    id: int
    fingerprint: str
    status: Alert.Status
    starts_at: datetime
    ends_at: datetime | None
    alertname: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    receive_count: int = Field(description="notifications received for this episode")
    first_seen: datetime
    last_seen: datetime
    investigations: list[int] = Field(description="ids of its investigations, newest first")
    investigation: int | None = Field(description="the newest of them, or null")

    @staticmethod
    def resolve_investigations(alert):
        return [investigation.pk for investigation in alert.investigations.all()]

    @staticmethod
    def resolve_investigation(alert):
        newest = next(iter(alert.investigations.all()), None)
        return newest.pk if newest else None


class AlertPageOut(Schema):
    items: list[AlertOut]
    count: int = Field(description="alerts matching the filters, over all pages")


class AlertFilters(Schema):
    fingerprint: str | None = Field(None, description="only the episodes of this alert")
    status: Alert.Status | None = None
    limit: int = Field(ALERTS_PAGE_DEFAULT, ge=1, le=ALERTS_PAGE_MAX)
    offset: int = Field(0, ge=0)


@router.get(
    "/{investigation_id}",
    response={200: InvestigationOut, (401, 404, 422): ErrorOut},
    summary="Get one investigation",
)
def get_investigation(request, investigation_id: int):
    """The investigation's state, scope, ranked suspects and report.

    Poll it while `status` is queued or running; `report` stays null until it completes.
    """
    fired_order = Alert.objects.order_by("starts_at", "pk")
    investigation = (
        Investigation.objects.prefetch_related(Prefetch("alerts", queryset=fired_order))
        .filter(pk=investigation_id)
        .first()
    )
    if investigation is None:
        raise Http404(f"No investigation {investigation_id}.")
    return investigation


class QuestionIn(Schema):
    question: str = Field(min_length=3, max_length=2000, description="what to ask")


class QuestionOut(Schema):
    investigation: int
    index: int = Field(description="the question's place in `followups`")
    status: str


@router.post(
    "/{investigation_id}/questions",
    response={202: QuestionOut, (401, 404, 409, 422): ErrorOut},
    summary="Ask a completed investigation a follow-up question",
)
def ask_question(request, investigation_id: int, body: QuestionIn):
    """The lead agent continues its conversation with the question, investigates further
    if needed, and answers; the answer appears in `followups`, its steps on the timeline.
    Needs a configured model (ANTHROPIC_API_KEY) and a completed investigation."""
    investigation = Investigation.objects.filter(pk=investigation_id).first()
    if investigation is None:
        raise Http404(f"No investigation {investigation_id}.")
    problem = None
    if not settings.ANTHROPIC_API_KEY:
        problem = "Follow-up questions need a model: ANTHROPIC_API_KEY is not set."
    elif investigation.status != Investigation.Status.COMPLETED:
        problem = f"Investigation {investigation_id} is {investigation.status}, not completed."
    if problem:
        return Status(409, {"error": "conflict", "message": problem, "fields": []})
    index = investigation.ask(body.question.strip(), requested_by=request.user)
    return Status(202, {"investigation": investigation.pk, "index": index, "status": "queued"})


@alerts_router.get(
    "",
    response={200: AlertPageOut, (401, 422): ErrorOut},
    summary="List alerts, or find the episodes of one",
)
def list_alerts(request, filters: Query[AlertFilters]):
    """Alert episodes newest first, each with the ids of its investigations.

    An alert is one firing episode (fingerprint + starts_at), so `?fingerprint=` may
    return several: its latest episode first, and its `investigation` is the newest one
    that covers it.
    """
    alerts = Alert.objects.order_by("-starts_at", "-pk")
    if filters.fingerprint is not None:
        alerts = alerts.filter(fingerprint=filters.fingerprint)
    if filters.status is not None:
        alerts = alerts.filter(status=filters.status)
    newest_first = Investigation.objects.order_by("-created_at", "-pk").only("pk")
    page = alerts.prefetch_related(Prefetch("investigations", queryset=newest_first))[
        filters.offset : filters.offset + filters.limit
    ]
    return {"items": list(page), "count": alerts.count()}
