"""Alert ingest: upsert firing episodes, then fold new ones into investigations.

Every alert of a delivery is written in one transaction by one `INSERT ... ON CONFLICT DO
UPDATE ... RETURNING` statement per chunk (SQLite 3.35+ and PostgreSQL speak the same
syntax). The database decides, atomically, whether an episode is new and whether this
delivery resolved it, so concurrent deliveries of the same alerts (Alertmanager HA pairs
send every notification twice) create each episode exactly once. The Django ORM has no
upsert that increments a counter on conflict, hence the one hand-written statement.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
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


def ingest(payload, delivery: WebhookDelivery) -> IngestResult:
    """Store the alerts of a validated payload and queue what needs investigating."""
    now = timezone.now()
    # One row per episode: a hostile payload may repeat one, and PostgreSQL refuses to
    # update the same row twice in one statement.
    episodes = {(a.fingerprint, a.startsAt): a for a in payload.alerts}
    rows = [_row(alert, payload.groupKey, delivery, now) for alert in episodes.values()]

    with transaction.atomic():
        returned = []
        for start in range(0, len(rows), UPSERT_CHUNK_ROWS):
            returned += _upsert(rows[start : start + UPSERT_CHUNK_ROWS])
        new_ids = [pk for pk, first, _ in returned if first == delivery.pk]
        resolved = sum(1 for _, _, resolved_by in returned if resolved_by == delivery.pk)
        queued = _fold_into_investigations(new_ids, payload.groupKey, now)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            outcome=WebhookDelivery.Outcome.ACCEPTED,
            status_code=202,
            alerts_received=len(payload.alerts),
            alerts_new=len(new_ids),
        )
    return IngestResult(
        alerts_received=len(payload.alerts),
        alerts_new=len(new_ids),
        alerts_resolved=resolved,
        investigations_queued=queued,
    )


def _row(alert, group_key, delivery, now):
    resolved = alert.status == Alert.Status.RESOLVED
    return {
        "fingerprint": alert.fingerprint,
        "starts_at": alert.startsAt,
        "ends_at": alert.ends_at,
        "status": alert.status,
        "alertname": alert.labels.get("alertname", "")[:200],
        "severity": alert.labels.get("severity", "").lower()[:50],
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generatorURL,
        "group_key": group_key,
        "receive_count": 1,
        "first_seen": now,
        "last_seen": now,
        "first_delivery_id": delivery.pk,
        "resolved_delivery_id": delivery.pk if resolved else None,
    }


def _upsert(rows):
    """Insert or update episodes; return (id, first_delivery_id, resolved_delivery_id)."""
    meta = Alert._meta
    q = connection.ops.quote_name
    columns = list(rows[0])
    fields = [meta.get_field(name) for name in columns]
    table = q(meta.db_table)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params = [
        field.get_db_prep_save(row[name], connection)
        for row in rows
        for name, field in zip(columns, fields, strict=True)
    ]
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
    # Identifiers come from the model and are quoted; every value is a parameter.
    sql = (
        f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({q('fingerprint')}, {q('starts_at')}) DO UPDATE SET {', '.join(updates)} "
        f"RETURNING {q('id')}, {q('first_delivery_id')}, {resolved_by}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _fold_into_investigations(new_alert_ids, group_key, now):
    """Attach new firing episodes to their group's recent investigation, or start one.

    Returns how many investigations were queued (0 or 1).
    """
    if not new_alert_ids:
        return 0
    new_alerts = list(
        Alert.objects.filter(pk__in=new_alert_ids, status=Alert.Status.FIRING).only("severity")
    )
    if not new_alerts:
        return 0
    recent = (
        Investigation.objects.filter(
            group_key=group_key, created_at__gte=now - settings.ROOTLINE_GROUP_WINDOW
        )
        .exclude(kind=Investigation.Kind.QUESTION)
        .order_by("-created_at")
        .first()
    )
    if recent is not None:
        recent.alerts.add(*new_alerts)
        return 0
    severities = settings.ROOTLINE_INVESTIGATE_SEVERITIES
    if severities and not any(alert.severity in severities for alert in new_alerts):
        return 0
    investigation = Investigation.objects.create(group_key=group_key, created_at=now)
    investigation.alerts.add(*new_alerts)
    investigation.enqueue()
    return 1
