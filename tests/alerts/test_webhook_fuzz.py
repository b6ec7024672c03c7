"""Malformed and hostile payloads at the webhook: never a 5xx, never a partial write."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.models import Alert, WebhookDelivery
from tests.shared import alertmanager_body

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\x00", "firing", "resolved", "4", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00",
     "2026-11-25T04:00:25.032Z", "\u202e\ufeff", "🔥" * 50, "' OR 1=1 --", "<script>"]
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
label_maps = st.dictionaries(text, text, max_size=8) | st.dictionaries(
    st.text(min_size=1, max_size=8), st.just("v"), min_size=150, max_size=400
)


@st.composite
def hostile_payloads(draw):
    """A recorded delivery with some fields replaced by hostile values."""
    body = alertmanager_body("firing_group_of_13")
    alert = draw(st.sampled_from(body["alerts"]))
    body["alerts"] = [alert, *draw(st.lists(st.sampled_from(body["alerts"]), max_size=3))]
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["payload", "alert", "labels"]))
        if target == "labels":
            alert["labels"] = draw(label_maps)
        else:
            where = body if target == "payload" else alert
            key = draw(st.sampled_from([*where.keys(), "extra"]))
            where[key] = draw(json_values | label_maps)
    return json.dumps(body)


@FUZZ
@given(body=hostile_payloads() | json_values.map(json.dumps) | st.binary(max_size=300))
def test_hostile_payloads_never_cause_a_server_error(post_webhook, body):
    alerts_before = Alert.objects.count()
    deliveries_before = WebhookDelivery.objects.count()

    response = post_webhook(body)

    assert response.status_code < 500, response.content
    assert WebhookDelivery.objects.count() == deliveries_before + 1
    answer = response.json()
    if response.status_code == 202:
        assert Alert.objects.count() == alerts_before + answer["alerts_new"]
    else:
        assert response.status_code in (400, 422)
        assert answer["message"]
        assert Alert.objects.count() == alerts_before


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_nesting_is_refused(post_webhook, depth):
    body = '{"version": "4", "alerts": ' + "[" * depth + "]" * depth + "}"

    response = post_webhook(body)

    assert response.status_code in (400, 422)
    assert Alert.objects.count() == 0


def test_a_huge_label_map_is_refused_naming_the_field(post_webhook):
    body = alertmanager_body("firing_single_checkout")
    body["alerts"][0]["labels"] = {f"label_{i}": "x" for i in range(5000)}

    response = post_webhook(body)

    assert response.status_code == 422
    assert "alerts.0.labels" in response.json()["message"]


def test_a_time_out_of_range_in_utc_is_refused(post_webhook):
    body = alertmanager_body("firing_single_checkout")
    body["alerts"][0]["startsAt"] = "0001-01-01T00:00:00+01:00"

    response = post_webhook(body)

    assert response.status_code == 422
    assert "alerts.0.startsAt" in response.json()["message"]


def test_a_nul_in_a_label_name_is_named_safely(post_webhook):
    body = alertmanager_body("firing_single_checkout")
    body["alerts"][0]["labels"]["bad\x00name"] = "v"

    response = post_webhook(body)

    assert response.status_code == 422
    assert "alerts.0.labels.bad\\x00name" in response.json()["message"]
    assert "\x00" not in WebhookDelivery.objects.get().error
