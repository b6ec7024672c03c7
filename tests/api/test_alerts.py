"""GET /api/v1/alerts (investigations/api.py)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Alert
from tests.factories import T0, make_alert, make_investigation

pytestmark = pytest.mark.django_db

FINGERPRINT = "a1b2c3d4e5f60718"


def minutes(n):
    return T0 + timedelta(minutes=n)


def test_an_alert_with_its_investigation(api_get):
    alert = make_alert(FINGERPRINT, severity="critical", service="payment-api")
    Alert.objects.filter(pk=alert.pk).update(
        status="resolved",
        ends_at=minutes(20),
        annotations={"summary": "5xx above 5%"},
        receive_count=3,
        first_seen=minutes(0),
        last_seen=minutes(20),
    )
    investigation = make_investigation(alert)

    response = api_get("/api/v1/alerts", fingerprint=FINGERPRINT)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "items": [
            {
                "id": alert.pk,
                "fingerprint": FINGERPRINT,
                "status": "resolved",
                "starts_at": "2026-11-25T04:00:00Z",
                "ends_at": "2026-11-25T04:20:00Z",
                "alertname": "HighErrorRate",
                "severity": "critical",
                "labels": {
                    "alertname": "HighErrorRate",
                    "namespace": "production",
                    "severity": "critical",
                    "service": "payment-api",
                },
                "annotations": {"summary": "5xx above 5%"},
                "receive_count": 3,
                "first_seen": "2026-11-25T04:00:00Z",
                "last_seen": "2026-11-25T04:20:00Z",
                "investigations": [investigation.pk],
                "investigation": investigation.pk,
            }
        ],
        "count": 1,
        "next_cursor": None,
    }


def test_every_episode_of_a_fingerprint_newest_first_with_its_newest_investigation(api_get):
    monday = make_alert(FINGERPRINT, starts_at=minutes(0))
    tuesday = make_alert(FINGERPRINT, starts_at=minutes(24 * 60))
    make_alert("ffff0000ffff0000", starts_at=minutes(30))
    first = make_investigation(monday, created_at=minutes(1))
    rerun = make_investigation(monday, created_at=minutes(90))

    body = api_get("/api/v1/alerts", fingerprint=FINGERPRINT).json()

    assert body["count"] == 2
    assert [a["id"] for a in body["items"]] == [tuesday.pk, monday.pk]
    assert (body["items"][0]["investigations"], body["items"][0]["investigation"]) == ([], None)
    assert body["items"][1]["investigations"] == [rerun.pk, first.pk]
    assert body["items"][1]["investigation"] == rerun.pk


def test_an_unknown_fingerprint_finds_nothing(api_get):
    make_alert(FINGERPRINT)

    assert api_get("/api/v1/alerts", fingerprint="0000").json() == {
        "items": [],
        "count": 0,
        "next_cursor": None,
    }


def test_without_a_fingerprint_the_newest_alerts_page_by_page(api_get):
    alerts = [make_alert(f"{n:016x}", starts_at=minutes(n)) for n in range(7)]
    newest_first = [a.pk for a in reversed(alerts)]

    pages, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api_get("/api/v1/alerts", **params).json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(p["items"]) for p in pages] == [3, 3, 1]
    assert [a["id"] for p in pages for a in p["items"]] == newest_first
    assert {p["count"] for p in pages} == {7}
    assert len(api_get("/api/v1/alerts").json()["items"]) == 7


def test_a_page_does_not_shift_when_new_alerts_arrive(api_get):
    for n in range(4):
        make_alert(f"{n:016x}", starts_at=minutes(n))
    first = api_get("/api/v1/alerts", limit=2).json()
    make_alert("00000000000000ff", starts_at=minutes(10))  # newer than everything

    second = api_get("/api/v1/alerts", limit=2, cursor=first["next_cursor"]).json()

    assert [a["fingerprint"] for a in second["items"]] == ["0000000000000001", "0000000000000000"]
    assert second["next_cursor"] is None


def test_alerts_starting_at_the_same_moment_are_neither_repeated_nor_skipped(api_get):
    same = [make_alert(f"{n:016x}", starts_at=minutes(0)).pk for n in range(5)]

    first = api_get("/api/v1/alerts", limit=2).json()
    second = api_get("/api/v1/alerts", limit=2, cursor=first["next_cursor"]).json()
    third = api_get("/api/v1/alerts", limit=2, cursor=second["next_cursor"]).json()

    ids = [a["id"] for page in (first, second, third) for a in page["items"]]
    assert ids == sorted(same, reverse=True)


@pytest.mark.parametrize("cursor", ["garbage", "eyJhIjoxfQ", "WyIyMDI2LTExLTI1VDA0OjAwOjAwIiwxXQ"])
def test_a_cursor_not_handed_out_is_refused(api_get, cursor):
    response = api_get("/api/v1/alerts", cursor=cursor)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"
    assert "next_cursor" in response.json()["message"]


def test_the_filters_of_the_alerts_page(api_get):
    make_alert("0001", starts_at=minutes(1), severity="critical", service="cart")
    make_alert("0002", starts_at=minutes(2), severity="warning", service="cart")
    make_alert("0003", starts_at=minutes(3), severity="critical", app="checkout")
    make_alert("0004", starts_at=minutes(4), alertname="DiskFull", namespace="infra")

    def found(**params):
        return [a["fingerprint"] for a in api_get("/api/v1/alerts", **params).json()["items"]]

    assert found(severity="critical") == ["0003", "0001"]
    assert found(service="cart") == ["0002", "0001"]
    assert found(service="checkout") == ["0003"]
    assert found(alertname="DiskFull") == ["0004"]
    assert found(namespace="infra") == ["0004"]
    assert found(q="checkout") == ["0003"]
    assert found(severity="critical", service="cart") == ["0001"]


def test_the_default_page_holds_fifty(api_get):
    Alert.objects.bulk_create(
        Alert(
            fingerprint=f"{n:016x}",
            starts_at=minutes(n),
            status="firing",
            labels={},
            first_seen=T0,
            last_seen=T0,
        )
        for n in range(60)
    )

    body = api_get("/api/v1/alerts").json()

    assert (len(body["items"]), body["count"]) == (50, 60)
    assert body["items"][0]["starts_at"] == "2026-11-25T04:59:00Z"


def test_the_status_filter(api_get):
    firing = make_alert("0001", starts_at=minutes(1))
    resolved = make_alert("0002", starts_at=minutes(2), status="resolved")

    only_firing = api_get("/api/v1/alerts", status="firing").json()
    only_resolved = api_get("/api/v1/alerts", status="resolved").json()

    assert [a["id"] for a in only_firing["items"]] == [firing.pk]
    assert [a["id"] for a in only_resolved["items"]] == [resolved.pk]
    assert only_firing["count"] == only_resolved["count"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 501}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "x" * 201}, "query.cursor"),
        ({"limit": "all"}, "query.limit"),
        ({"status": "pending"}, "query.status"),
        ({"alertname": ["DiskFull", "HighLatency"]}, "query.alertname"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(api_get, params, field):
    response = api_get("/api/v1/alerts", **params)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["fields"][0].startswith(f"{field}:")


def test_the_queries_do_not_grow_with_the_page(api_get):
    def queries_for_a_page():
        with CaptureQueriesContext(connection) as queries:
            assert api_get("/api/v1/alerts").status_code == 200
        return len(queries)

    alert = make_alert("0001", starts_at=minutes(1))
    make_investigation(alert)
    one = queries_for_a_page()
    for n in range(2, 12):
        make_investigation(make_alert(f"{n:04x}", starts_at=minutes(n)), created_at=minutes(n))
    eleven = queries_for_a_page()

    assert eleven == one
