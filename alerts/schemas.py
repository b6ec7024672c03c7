"""The Alertmanager webhook payload (version 4), as Alertmanager sends it.

Validation is strict about what would otherwise fail later, inside the database: NUL
characters (PostgreSQL's text cannot hold them) and times that cannot be converted to UTC.
Such a payload is refused with 422, naming the field. (Lone surrogates, which no database
text can hold either, are already refused by the JSON parser: 400.)
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

MAX_LABELS = 200
MAX_ALERTS = 10_000
# Alertmanager writes Go's zero time for "no end yet".
ZERO_TIME_YEAR = 1


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


Text = Annotated[str, AfterValidator(storable)]
ShortText = Annotated[str, Field(max_length=1024), AfterValidator(storable)]
LabelMap = Annotated[dict[ShortText, Text], Field(max_length=MAX_LABELS)]
Timestamp = Annotated[AwareDatetime, AfterValidator(utc)]


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: LabelMap = {}
    startsAt: Timestamp
    endsAt: Timestamp | None = None
    generatorURL: Text = ""
    fingerprint: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")]

    @property
    def ends_at(self):
        """endsAt, or None when Alertmanager sent Go's zero time."""
        if self.endsAt is None or self.endsAt.year <= ZERO_TIME_YEAR:
            return None
        return self.endsAt


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: Text
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: Text = ""
    groupLabels: LabelMap = {}
    commonLabels: LabelMap = {}
    commonAnnotations: LabelMap = {}
    externalURL: Text = ""
    alerts: Annotated[list[AlertIn], Field(max_length=MAX_ALERTS)]


class WebhookAcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    alerts_received: int
    alerts_new: int
    alerts_resolved: int
    investigations_queued: int


class ErrorOut(BaseModel):
    """The one shape of every error answer."""

    error: str = Field(description="a stable code, e.g. payload_invalid")
    message: str = Field(description="what is wrong, for a person")
    fields: list[str] = Field(default=[], description="the offending fields, when known")


def printable(part, max_chars=60):
    """A location part (an index, a field or a hostile label name) safe to show and store."""
    text = str(part)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= max_chars else text[:max_chars] + "…"


def describe_validation_error(exc) -> tuple[str, list[str]]:
    """A short message and the list of offending fields of a pydantic ValidationError."""
    fields = []
    for error in exc.errors(include_url=False):
        location = ".".join(printable(part) for part in error["loc"]) or "(body)"
        fields.append(f"{location}: {error['msg']}")
    shown = fields[:5]
    more = f" (+{len(fields) - 5} more)" if len(fields) > 5 else ""
    return "Not an Alertmanager v4 payload: " + "; ".join(shown) + more, fields[:50]
