"""Alert ingest: upsert firing episodes, then fold new ones into investigations.

Every alert of a delivery is written in one transaction by one `INSERT ... ON CONFLICT DO
UPDATE ... RETURNING` statement per chunk (SQLite 3.35+ and PostgreSQL speak the same
syntax). The database decides, atomically, whether an episode is new and whether this
delivery resolved it, so concurrent deliveries of the same alerts (Alertmanager HA pairs
send every notification twice) create each episode exactly once. The Django ORM has no
upsert that increments a counter on conflict, hence the one hand-written statement.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.utils import timezone

from alerts.models import Alert, WebhookDelivery
from investigations.models import Investigation

UPSERT_CHUNK_ROWS = 500


@dataclass
class IngestResult:
    alerts_received: int
    alerts_new: int
    alerts_resolved: int
    investigations_queued: int

    def as_dict(self):
        return {"status": "accepted", **self.__dict__}


@dataclass
class Batch:
    """A validated payload made ready to write: prepared outside the write transaction,
    since on SQLite every other writer waits while one is open."""

    group_key: str
    alerts_received: int
    rows: list  # one tuple of values per distinct episode, COLUMNS minus the delivery ids
    resolved: list  # whether each row is a resolution
    now: datetime
    first_start: datetime | None  # of the firing alerts


def prepare(payload) -> Batch:
    now = timezone.now()
    # One row per episode: a hostile payload may repeat one, and PostgreSQL refuses to
    # update the same row twice in one statement.
    episodes = {(a.fingerprint, a.startsAt): a for a in payload.alerts}.values()
    seen = connection.ops.adapt_datetimefield_value(now)
    return Batch(
        group_key=payload.groupKey,
        alerts_received=len(payload.alerts),
        rows=[_values(alert, payload.groupKey, seen) for alert in episodes],
        resolved=[alert.status == Alert.Status.RESOLVED for alert in episodes],
        now=now,
        first_start=min(
            (a.startsAt for a in episodes if a.status == Alert.Status.FIRING), default=None
        ),
    )


def ingest(batch: Batch, delivery: WebhookDelivery) -> IngestResult:
    """Store the alerts of a prepared batch and queue what needs investigating.

    Call it inside a transaction (the webhook's savepoint): its writes belong together.
    Four to seven statements, whatever the number of alerts up to UPSERT_CHUNK_ROWS.
    """
    pk = delivery.pk
    params = [
        (*row, pk, pk if resolved else None)
        for row, resolved in zip(batch.rows, batch.resolved, strict=True)
    ]
    returned = []
    for start in range(0, len(params), UPSERT_CHUNK_ROWS):
        returned += _upsert(params[start : start + UPSERT_CHUNK_ROWS])
    new = [row for row in returned if row.first_delivery_id == pk]
    resolved = sum(1 for row in returned if row.resolved_delivery_id == pk)
    queued = _fold_into_investigations(
        [row for row in new if row.status == Alert.Status.FIRING],
        batch.group_key,
        batch.now,
        as_of=_replay_as_of(batch.first_start),
    )
    WebhookDelivery.objects.filter(pk=pk).update(
        outcome=WebhookDelivery.Outcome.ACCEPTED,
        status_code=202,
        alerts_received=batch.alerts_received,
        alerts_new=len(new),
    )
    return IngestResult(
        alerts_received=batch.alerts_received,
        alerts_new=len(new),
        alerts_resolved=resolved,
        investigations_queued=queued,
    )


class Upserted(NamedTuple):
    id: int
    first_delivery_id: int
    resolved_delivery_id: int | None
    status: str
    severity: str


# The columns written, in the order _params gives their values.
COLUMNS = (
    "fingerprint",
    "starts_at",
    "ends_at",
    "status",
    "alertname",
    "severity",
    "labels",
    "annotations",
    "generator_url",
    "group_key",
    "receive_count",
    "first_seen",
    "last_seen",
    "first_delivery_id",
    "resolved_delivery_id",
)


def _values(alert, group_key, seen):
    """The values of COLUMNS but the last two (the delivery ids) for one alert, adapted
    for the database as the ORM would; `seen` is the delivery's time, adapted once."""
    ops = connection.ops
    return (
        alert.fingerprint,
        ops.adapt_datetimefield_value(alert.startsAt),
        ops.adapt_datetimefield_value(alert.ends_at),
        alert.status,
        alert.labels.get("alertname", "")[:200],
        alert.labels.get("severity", "").lower()[:50],
        ops.adapt_json_value(alert.labels, None),
        ops.adapt_json_value(alert.annotations, None),
        alert.generatorURL,
        group_key,
        1,
        seen,
        seen,
    )


def _upsert(params):
    """Insert or update episodes; return an Upserted row for each."""
    q = connection.ops.quote_name
    table = q(Alert._meta.db_table)
    placeholders = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    refreshed = ("ends_at", "status", "annotations", "generator_url", "group_key", "last_seen")
    updates = [f"{q(c)} = excluded.{q(c)}" for c in refreshed]
    updates.append(f"{q('receive_count')} = {table}.{q('receive_count')} + 1")
    # The delivery that resolved the episode: kept from the first resolving delivery,
    # cleared if Alertmanager reports the episode firing again.
    resolved_by = q("resolved_delivery_id")
    updates.append(
        f"{resolved_by} = CASE WHEN excluded.{q('status')} = 'resolved' "
        f"THEN COALESCE({table}.{resolved_by}, excluded.{resolved_by}) ELSE NULL END"
    )
    returning = ", ".join(q(c) for c in Upserted._fields)
    # Identifiers come from the model and are quoted; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(q(c) for c in COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(params))} "
        f"ON CONFLICT ({q('fingerprint')}, {q('starts_at')}) DO UPDATE SET {', '.join(updates)} "
        f"RETURNING {returning}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in params for value in row])
        return [Upserted(*row) for row in cursor.fetchall()]


def _replay_as_of(first_start):
    """The fixed "now" of a new investigation when replaying (ROOTLINE_REPLAY_AS_OF)."""
    offset = settings.ROOTLINE_REPLAY_AS_OF
    return first_start + offset if offset is not None and first_start else None


def _fold_into_investigations(new_firing, group_key, now, as_of=None):
    """Attach new firing episodes to their group's recent investigation, or start one.

    Returns how many investigations were queued (0 or 1). On PostgreSQL a transaction
    lock on the group key makes concurrent deliveries of one new group start one
    investigation, not two; SQLite's write lock (BEGIN IMMEDIATE) already serialises them.
    The lookup and the membership rows are plain SQL: this runs for every delivery with
    a new alert, and the ORM's per-row model instances cost more than the writes.
    """
    if not new_firing:
        return 0
    q = connection.ops.quote_name
    investigations = q(Investigation._meta.db_table)
    membership = Investigation.alerts.through._meta
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [group_key])
        cursor.execute(
            f"SELECT {q('id')} FROM {investigations} "  # noqa: S608 (quoted identifiers)
            f"WHERE {q('group_key')} = %s AND {q('created_at')} >= %s AND {q('kind')} <> %s "
            f"ORDER BY {q('created_at')} DESC LIMIT 1",
            [
                group_key,
                connection.ops.adapt_datetimefield_value(now - settings.ROOTLINE_GROUP_WINDOW),
                Investigation.Kind.QUESTION,
            ],
        )
        recent = cursor.fetchone()
        investigation = None
        if recent is None:
            severities = settings.ROOTLINE_INVESTIGATE_SEVERITIES
            if severities and not any(row.severity in severities for row in new_firing):
                return 0
            investigation = Investigation.objects.create(
                group_key=group_key, created_at=now, as_of=as_of
            )
            investigation_id = investigation.pk
        else:
            investigation_id = recent[0]
        columns = (q("investigation_id"), q("alert_id"))
        cursor.execute(
            f"INSERT INTO {q(membership.db_table)} ({', '.join(columns)}) "  # noqa: S608
            f"VALUES {', '.join(['(%s, %s)'] * len(new_firing))}",
            [value for row in new_firing for value in (investigation_id, row.id)],
        )
    if investigation is None:
        return 0
    investigation.enqueue()
    return 1
