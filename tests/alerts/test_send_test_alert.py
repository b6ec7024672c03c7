"""manage.py send_test_alert against a live Rootline (alerts/management/commands)."""

import pytest
from django.core.management import CommandError, call_command

from alerts.models import Alert
from investigations.models import Investigation

pytestmark = pytest.mark.django_db(transaction=True)


def send(live_server, *args):
    from io import StringIO

    out = StringIO()
    call_command(
        "send_test_alert", "--url", f"{live_server.url}/webhooks/alertmanager", *args, stdout=out
    )
    return out.getvalue()


def test_a_test_alert_fires_and_resolves(live_server):
    fired = send(live_server)
    starts_at = fired.split("--starts-at ")[1].strip()
    alert = Alert.objects.get()
    resolved = send(live_server, "--resolved", "--starts-at", starts_at)

    assert fired.startswith("202 ")
    assert alert.status == "firing"
    assert alert.labels["rootline_test"] == "true"
    assert Investigation.objects.get().alerts.get() == alert
    assert '"alerts_resolved":1' in resolved.replace(" ", "")
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert Alert.objects.count() == 1


def test_a_refusal_is_reported(live_server):
    with pytest.raises(CommandError, match="401"):
        send(live_server, "--token", "wrong")


def test_an_unreachable_rootline_is_reported():
    with pytest.raises(CommandError, match="could not reach"):
        call_command("send_test_alert", "--url", "http://127.0.0.1:9/webhooks/alertmanager")
