"""The JSON API, version 1: investigations and the alerts that started them.

Both routers live here because the question they answer is the same, "what does Rootline
know about this incident?", and the alerts endpoint's point is to lead from a fingerprint
to its investigations. The webhook that receives alerts is alerts/api.py.

Everything the pages do is here too: the same filters, the same timeline cursor, the same
actions (ask, re-run, cancel, follow-up, feedback), through the same model methods.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from django.db.models import Prefetch, Q
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    field_validator,
)

from accounts.auth import API_AUTH
from alerts.models import Alert
from alerts.schemas import ErrorOut, storable, utc
from alerts.views import filter_alerts
from investigations.models import Investigation, ToolCall
from investigations.scope import (
    EARLIEST,
    ScopeError,
    check_matchers,
    check_window,
    parse_matchers,
)
from investigations.templatetags.reports import markdown
from investigations.views import active_investigations, firing_by_severity, numbers
from rca_site.cursor import newest_first
from rca_site.errors import ApiError

PAGE_DEFAULT = 50
PAGE_MAX = 500
STEPS_PAGE_MAX = 500
QUESTION_WINDOW_DEFAULT = timedelta(hours=1)
MATCHERS_MAX_CHARS = 1000

router = Router(tags=["investigations"], auth=API_AUTH)
alerts_router = Router(tags=["alerts"], auth=API_AUTH)
overview_router = Router(tags=["overview"], auth=API_AUTH)

ERRORS = (400, 401, 404, 409, 413, 422, 500, 503)


def one_of(choices):
    """A Django choices class as an inline enum of the schema: Alert.Status,
    Investigation.Status and ToolCall.Status would all be components named "Status"."""
    return Literal[tuple(choices.values)]


def iso_time(value):
    """Only ISO 8601 text: pydantic would also read a number as seconds since 1970."""
    if not isinstance(value, datetime):
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError("must be an ISO 8601 time such as 2026-11-25T10:00:00Z") from None
    return value


def since_earliest(value):
    """Not before 1970 (scope.EARLIEST): a window reckoned back from year 1 overflows."""
    if value < EARLIEST:
        raise ValueError(f"must be {EARLIEST:%Y-%m-%dT%H:%M:%SZ} or later")
    return value


# In UTC (alerts.schemas.utc): ISO 8601 admits offsets PostgreSQL cannot store (+20:30).
Time = Annotated[
    AwareDatetime, BeforeValidator(iso_time), AfterValidator(since_earliest), AfterValidator(utc)
]
# No NUL character: PostgreSQL's text cannot hold one, nor compare with one.
Text = Annotated[str, AfterValidator(storable)]
AlertStatus = one_of(Alert.Status)
InvestigationKind = one_of(Investigation.Kind)
InvestigationStatus = one_of(Investigation.Status)
Feedback = one_of(Investigation.Feedback)
StepAgent = one_of(ToolCall.Agent)
StepStatus = one_of(ToolCall.Status)


def alerts_in_firing_order():
    return Prefetch("alerts", queryset=Alert.objects.order_by("starts_at", "pk"))


def get_one(investigation_id):
    """The investigation with its alerts in the order they fired, or 404."""
    queryset = Investigation.objects.prefetch_related(alerts_in_firing_order())
    investigation = queryset.filter(pk=investigation_id).first()
    if investigation is None:
        raise ApiError(404, "not_found", f"No investigation {investigation_id}.")
    return investigation


def conflict(message):
    return ApiError(409, "conflict", message)


# --- Shapes ---------------------------------------------------------------------------


class SuspectOut(BaseModel):
    """One ranked suspect as the signal scan stored it; keys beyond these are passed on.

    A pydantic model, not a ninja Schema: a Schema reads its input through attribute
    access and would drop the extra keys.
    """

    model_config = ConfigDict(extra="allow")

    service: str
    score: float
    evidence: list[dict] = Field(
        default=[],
        description="what changed in the service, by `kind`: `metric` (a series; "
        "`saturated` is the level, as a share, that a `_ratio` or `_percent` series held at "
        "its ceiling, else null; "
        "`aggregated` is `avg`, `max` or `sum` where the series stands for all of the "
        "service's, averaged, their highest (a share) or summed as rates, read so because "
        "they were over the scan's cap; `quantile` is the quantile a histogram's buckets were "
        "read as, else null; `stopped` is when a steady series stopped reporting, unix "
        "seconds, else null; `restarted` when a counter started over in the incident though "
        "it never did in the baseline, else null; `left_constant` is true where the series "
        "held one value through the baseline and another in the incident: a state that "
        "changed, as a replica count or a process' start time; `replaces` lists the pods "
        "whose series a new pod's took over, judged against their baselines, and `beside` "
        "the pods beside which a new one began (an autoscaler's, a canary), whose baselines "
        "it was judged by, else null), "
        "`rollout` (pods of the service replaced in the incident: `replaced` and `new` name "
        "up to three of each, `pods_replaced` and `pods_new` count them, `onset` is the first "
        "stop or start, `changed` maps a label to the values every replaced pod held and no "
        "new one, and the new pods' likewise, such as an image), `silence` (every steady "
        "series of the service stopped and none of its series still moves: `series` and "
        "`metrics` count them, `onset` and `last` are the first and last of their stops), "
        "`logs` (its error-like lines; `streams` are the label sets of those in the incident, "
        "most lines first, up to three), `paths` (requests that stopped going through it as "
        "before), `alert` (nothing in scope changed clearly, so the alert that fired on the "
        "service is the evidence left: `services` counts the alerting services, each of which "
        "has it; the suspect's `alert_score` is 1)",
    )
    callers: list[str] = Field(
        default=[],
        description="the services in scope that call it, where series name both ends of "
        "their calls (source_*/destination_*, client/server, src_*/dst_* labels)",
    )


class InvestigationBase(Schema):
    id: int
    kind: InvestigationKind
    status: InvestigationStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    question: str = Field(description="the question of an ad-hoc investigation, else empty")
    alerts: list[str] = Field(description="fingerprints of its alerts, in the order they fired")
    feedback: str = Field(description="correct, partly, wrong, or empty when not judged")

    @staticmethod
    def resolve_alerts(investigation):
        return [alert.fingerprint for alert in investigation.alerts.all()]


class InvestigationSummaryOut(InvestigationBase):
    """An investigation in a list: what it is about and what it found, in a line."""

    alertnames: list[str] = Field(description="the distinct alertnames of its alerts")
    root_cause: str | None = Field(description="the root-cause service of the report, if any")
    confidence: float | None = Field(description="0..1, the report's confidence")
    report_source: str = Field(description="agents, signals, or empty without a report")

    @staticmethod
    def resolve_alertnames(investigation):
        return list(dict.fromkeys(a.alertname for a in investigation.alerts.all() if a.alertname))

    @staticmethod
    def resolve_root_cause(investigation):
        cause = (investigation.report or {}).get("root_cause")
        return cause.get("service") if isinstance(cause, dict) else None

    @staticmethod
    def resolve_confidence(investigation):
        confidence = (investigation.report or {}).get("confidence")
        return float(confidence) if isinstance(confidence, int | float) else None


class InvestigationOut(InvestigationBase):
    as_of: datetime | None = Field(description="no data after this time is read")
    error: str
    group_key: str = Field(description="the Alertmanager groupKey of its alerts")
    rerun_of: int | None = Field(description="the investigation this one repeats")
    scope: dict = Field(
        description=(
            "label matchers, the selector they make, `unstored` (per store, the matchers' "
            "labels it holds nothing with, left out of its selector), `log_selector` and "
            "`log_labels` where Loki names labels otherwise, `service_namespace` where no "
            'label bounds it but every alert\'s job names one namespace (job="shop/web"), '
            "services and windows; {} until scoped"
        )
    )
    baseline_start: datetime | None
    incident_start: datetime | None
    incident_end: datetime | None
    model: str = Field(description="the Claude model of its agents; empty for signals only")
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="LLM cost in US dollars")
    suspects: list[SuspectOut] = Field(description="services ranked by the signal scan")
    report: dict | None
    report_text: str = Field(description="the report as Markdown")
    followups: list[dict] = Field(
        description="follow-up questions and their answers: question, status, answer, steps"
    )
    feedback_text: str
    feedback_at: datetime | None
    notifications: list[dict] = Field(
        description="the report's notifications: channel, target (host), status "
        "(pending, sent, failed), attempts, last_error, sent_at, next_attempt_at"
    )

    @staticmethod
    def resolve_rerun_of(investigation):
        return investigation.rerun_of_id


class InvestigationPageOut(Schema):
    items: list[InvestigationSummaryOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class InvestigationFilters(Schema):
    status: InvestigationStatus | None = None
    kind: InvestigationKind | None = None
    fingerprint: Text | None = Field(
        None, max_length=64, description="investigations of this alert"
    )
    alertname: Text | None = Field(None, max_length=200)
    feedback: Feedback | None = None
    q: Text | None = Field(None, max_length=200, description="text in the question or report")
    created_after: Time | None = None
    created_before: Time | None = None
    cursor: Text | None = Field(None, max_length=200)
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


class StepOut(Schema):
    """One step of the timeline: a scan, a model turn, or a tool call of an agent."""

    sequence: int = Field(description="its place on the timeline; the steps cursor")
    parent: int | None = Field(description="the sequence of the delegation it belongs to")
    agent: StepAgent
    tool: str
    reason: str
    status: StepStatus
    input: dict
    output: Any = Field(None, description="structured result")
    output_text: str = Field(description="the result as given to the model")
    error: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    input_tokens: int
    output_tokens: int
    query: str = Field(description="the LogQL or PromQL it ran, if any")
    links: list[dict] = Field(description="Grafana Explore links to its query, where configured")

    @staticmethod
    def resolve_parent(step):
        return step.parent.sequence if step.parent_id else None


class StepsOut(Schema):
    items: list[StepOut] = Field(description="steps that have ended, in order, after `after`")
    running: list[StepOut] = Field(
        description="steps still running (and any after them): read them again next time"
    )
    next_after: int = Field(description="pass as `after` next time")
    ended: bool = Field(description="the investigation and its follow-ups are over")


class StepFilters(Schema):
    after: int = Field(0, ge=0, le=2**31, description="the last sequence already read")


class ReportOut(Schema):
    investigation: int
    status: InvestigationStatus
    source: str = Field(description="agents (Claude) or signals (the deterministic scan)")
    report: dict
    markdown: str
    html: str = Field(description="the Markdown as sanitised HTML, step references linked")
    suspects: list[SuspectOut]
    evidence_steps: dict = Field(description="the timeline step of each scan that found evidence")


Matchers = dict[str, str] | str


class QuestionInvestigationIn(Schema):
    """An investigation without an alert."""

    question: Text = Field(min_length=3, max_length=2000, description="what to find out")
    matchers: Matchers = Field(
        {},
        description='equality label matchers that bound every query, as {"namespace": "shop"} '
        'or \'namespace="shop", service="cart"\'; empty: every series with a service label',
    )
    start: Time | None = Field(None, description="default: an hour before `end`")
    end: Time | None = Field(None, description="default: now; not in the future")

    @field_validator("matchers", mode="before")
    @classmethod
    def read_matchers(cls, value):
        try:
            if isinstance(value, str) and len(value) <= MATCHERS_MAX_CHARS:
                return parse_matchers(value)
            if isinstance(value, dict):
                return check_matchers(value)
        except ScopeError as exc:
            raise ValueError(str(exc)) from None
        raise ValueError(
            'must be an object of label names to values, or a string such as namespace="shop" '
            f"of at most {MATCHERS_MAX_CHARS} characters"
        )


class FeedbackIn(Schema):
    feedback: Feedback = Field(description="the verdict on the report")
    text: Text = Field("", max_length=4000, description="the real root cause, in words")


class FeedbackOut(Schema):
    investigation: int
    feedback: Feedback
    feedback_text: str
    feedback_at: datetime


class QuestionIn(Schema):
    question: Text = Field(min_length=3, max_length=2000, description="what to ask")


class QuestionOut(Schema):
    investigation: int
    index: int = Field(description="the question's place in `followups`")
    status: str


# --- Investigations ---------------------------------------------------------------------


@router.get(
    "",
    response={200: InvestigationPageOut, ERRORS: ErrorOut},
    summary="List investigations, newest first",
)
def list_investigations(request, filters: Query[InvestigationFilters]):
    """Filter by status, kind, alert, alertname, feedback, text or creation time; page with
    `cursor` (the `next_cursor` of the previous page)."""
    investigations = Investigation.objects.all()
    if filters.status:
        investigations = investigations.filter(status=filters.status)
    if filters.kind:
        investigations = investigations.filter(kind=filters.kind)
    if filters.feedback:
        investigations = investigations.filter(feedback=filters.feedback)
    if filters.fingerprint:
        investigations = investigations.filter(alerts__fingerprint=filters.fingerprint)
    if filters.alertname:
        investigations = investigations.filter(alerts__alertname=filters.alertname)
    if text := (filters.q or "").strip():
        investigations = investigations.filter(
            Q(question__icontains=text) | Q(report_text__icontains=text) | Q(error__icontains=text)
        )
    if filters.created_after:
        investigations = investigations.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        investigations = investigations.filter(created_at__lt=filters.created_before)
    investigations = investigations.distinct().prefetch_related(alerts_in_firing_order())
    items, next_cursor = newest_first(investigations, "created_at", filters.cursor, filters.limit)
    return {"items": items, "next_cursor": next_cursor}


@router.post(
    "",
    response={201: InvestigationOut, ERRORS: ErrorOut},
    summary="Start an investigation without an alert",
)
def create_investigation(request, body: QuestionInvestigationIn):
    """Like the Ask page: a question, label matchers and a time range (at most 7 days,
    not in the future). It is queued at once; poll it, or read its steps."""
    now = timezone.now()
    end = body.end or now
    start = body.start or end - QUESTION_WINDOW_DEFAULT
    try:
        start, end = check_window(start, end, now)
    except ScopeError as exc:
        raise ApiError(422, "invalid_request", str(exc), ["body.start", "body.end"]) from None
    investigation = Investigation.open_question(
        body.question.strip(), body.matchers, start, end, requested_by=request.user
    )
    return Status(201, get_one(investigation.pk))


@router.get(
    "/{investigation_id}",
    response={200: InvestigationOut, ERRORS: ErrorOut},
    summary="Get one investigation",
)
def get_investigation(request, investigation_id: int):
    """The investigation's state, scope, ranked suspects and report.

    Poll it while `status` is queued or running; `report` stays null until it completes.
    """
    return get_one(investigation_id)


@router.get(
    "/{investigation_id}/steps",
    response={200: StepsOut, ERRORS: ErrorOut},
    summary="Read the timeline after a cursor",
)
def list_steps(request, investigation_id: int, filters: Query[StepFilters]):
    """The steps after sequence `after`, as the page's live timeline reads them: `items`
    have ended and are final; pass `next_after` next time. Stop polling once `ended`."""
    investigation = get_one(investigation_id)
    done, running, ended = investigation.steps_after(filters.after)
    done = done[:STEPS_PAGE_MAX]
    ended = ended and not running and len(done) < STEPS_PAGE_MAX
    return {
        "items": done,
        "running": running,
        "next_after": done[-1].sequence if done else filters.after,
        "ended": ended,
    }


@router.get(
    "/{investigation_id}/report",
    response={200: ReportOut, ERRORS: ErrorOut},
    summary="Get the report of an investigation",
)
def get_report(request, investigation_id: int):
    """The report as structured data, as Markdown and as sanitised HTML, with the
    suspects. 404 until the investigation has a report."""
    investigation = get_one(investigation_id)
    if not investigation.report:
        raise ApiError(
            404,
            "no_report",
            f"Investigation {investigation_id} has no report yet (it is {investigation.status}).",
        )
    return {
        "investigation": investigation.pk,
        "status": investigation.status,
        "source": investigation.report_source,
        "report": investigation.report,
        "markdown": investigation.report_text,
        "html": markdown(investigation.report_text),
        "suspects": investigation.suspects,
        "evidence_steps": investigation.evidence_steps,
    }


@router.post(
    "/{investigation_id}/rerun",
    response={202: InvestigationOut, ERRORS: ErrorOut},
    summary="Investigate the same alerts (or question) again",
)
def rerun_investigation(request, investigation_id: int):
    """A new investigation, queued at once; this one is left as it is."""
    again = get_one(investigation_id).rerun(requested_by=request.user)
    return Status(202, get_one(again.pk))


@router.post(
    "/{investigation_id}/cancel",
    response={200: InvestigationOut, ERRORS: ErrorOut},
    summary="Cancel a queued or running investigation",
)
def cancel_investigation(request, investigation_id: int):
    """A running investigation stops at its next step. 409 when it has already ended."""
    investigation = get_one(investigation_id)
    if not investigation.cancel(f"cancelled by {request.user}"):
        raise conflict(f"Investigation {investigation_id} is {investigation.status}: it has ended.")
    return investigation


@router.post(
    "/{investigation_id}/questions",
    response={202: QuestionOut, ERRORS: ErrorOut},
    summary="Ask a completed investigation a follow-up question",
)
def ask_question(request, investigation_id: int, body: QuestionIn):
    """The lead agent continues its conversation with the question, investigates further
    if needed, and answers; the answer appears in `followups`, its steps on the timeline.
    Needs a configured model (ANTHROPIC_API_KEY) and a completed investigation."""
    investigation = get_one(investigation_id)
    if problem := investigation.why_no_question():
        raise conflict(problem)
    index = investigation.ask(body.question.strip(), requested_by=request.user)
    return Status(202, {"investigation": investigation.pk, "index": index, "status": "queued"})


@router.put(
    "/{investigation_id}/feedback",
    response={200: FeedbackOut, ERRORS: ErrorOut},
    summary="Judge the report: correct, partly or wrong",
)
def give_feedback(request, investigation_id: int, body: FeedbackIn):
    """The verdict and, in words, the real root cause; a later verdict replaces it."""
    investigation = get_one(investigation_id)
    investigation.record_feedback(body.feedback, body.text.strip())
    return {
        "investigation": investigation.pk,
        "feedback": investigation.feedback,
        "feedback_text": investigation.feedback_text,
        "feedback_at": investigation.feedback_at,
    }


# --- Alerts -----------------------------------------------------------------------------


class AlertOut(Schema):
    id: int
    fingerprint: str
    status: AlertStatus
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


class EpisodeOut(Schema):
    id: int
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None


class DeliveryOut(Schema):
    id: int
    received_at: datetime
    outcome: str
    group_key: str


class AlertDetailOut(AlertOut):
    generator_url: str
    group_key: str
    first_delivery: DeliveryOut | None = Field(description="the delivery that brought it")
    resolved_delivery: DeliveryOut | None = Field(description="the one that resolved it")
    episodes: list[EpisodeOut] = Field(description="every firing episode of its fingerprint")


class AlertPageOut(Schema):
    items: list[AlertOut]
    count: int = Field(description="alerts matching the filters, over all pages")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class AlertFilters(Schema):
    fingerprint: Text | None = Field(None, max_length=64, description="the episodes of this alert")
    status: AlertStatus | None = None
    severity: Text | None = Field(None, max_length=50)
    alertname: Text | None = Field(None, max_length=200)
    service: Text | None = Field(None, max_length=200, description="any service label's value")
    namespace: Text | None = Field(None, max_length=200)
    q: Text | None = Field(None, max_length=200, description="text in labels or annotations")
    cursor: Text | None = Field(None, max_length=200)
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


def newest_investigations():
    newest = Investigation.objects.order_by("-created_at", "-pk").only("pk")
    return Prefetch("investigations", queryset=newest)


@alerts_router.get(
    "",
    response={200: AlertPageOut, ERRORS: ErrorOut},
    summary="List alerts, or find the episodes of one",
)
def list_alerts(request, filters: Query[AlertFilters]):
    """Alert episodes newest first, each with the ids of its investigations; the same
    filters as the alerts page. Page with `cursor` (the `next_cursor` of the last page).

    An alert is one firing episode (fingerprint + starts_at), so `?fingerprint=` may
    return several: its latest episode first, and its `investigation` is the newest one
    that covers it.
    """
    alerts = filter_alerts(filters.dict(exclude_none=True)).prefetch_related(None)
    page = alerts.prefetch_related(newest_investigations())
    items, next_cursor = newest_first(page, "starts_at", filters.cursor, filters.limit)
    return {"items": items, "count": alerts.count(), "next_cursor": next_cursor}


@alerts_router.get(
    "/{alert_id}",
    response={200: AlertDetailOut, ERRORS: ErrorOut},
    summary="Get one alert with its history and deliveries",
)
def get_alert(request, alert_id: int):
    """Labels, annotations, the deliveries that brought and resolved it, every episode of
    its fingerprint, and its investigations."""
    alert = (
        Alert.objects.select_related("first_delivery", "resolved_delivery")
        .prefetch_related(newest_investigations())
        .filter(pk=alert_id)
        .first()
    )
    if alert is None:
        raise ApiError(404, "not_found", f"No alert {alert_id}.")
    alert.episodes = Alert.objects.filter(fingerprint=alert.fingerprint).order_by("-starts_at")
    return alert


# --- Overview ---------------------------------------------------------------------------


class OverviewOut(Schema):
    days: int = Field(description="the figures cover this many days")
    median_seconds_to_report: float | None = Field(description="from first alert to report")
    per_day: float = Field(description="investigations per day")
    cost_per_day: float = Field(description="LLM cost per day, US dollars")
    correct_share: float | None = Field(description="share of judged reports marked correct")
    judged: int = Field(description="reports with feedback")
    firing: dict[str, int] = Field(description="alerts firing now, by severity")
    active: list[int] = Field(description="ids of the investigations queued or running")


@overview_router.get("", response={200: OverviewOut, ERRORS: ErrorOut}, summary="The overview")
def overview(request):
    """What the overview page shows an SRE lead, over the last days."""
    return {
        **numbers(timezone.now()),
        "firing": {row["severity"] or "none": row["count"] for row in firing_by_severity()},
        "active": list(active_investigations().values_list("pk", flat=True)),
    }
