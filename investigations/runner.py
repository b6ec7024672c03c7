"""One investigation, end to end. The only place the investigation steps touch models.

Each step is a ToolCall written when it starts and when it ends, so the timeline shows
it live. Steps so far: scope. The signal scan and the agents come after it.
"""

import logging
from contextlib import contextmanager

from django.utils import timezone

from investigations.models import Investigation, ToolCall
from investigations.scope import derive_scope

log = logging.getLogger(__name__)


class InvestigationError(Exception):
    """A step cannot go on; the investigation fails with this message."""


@contextmanager
def step(investigation, agent, tool, input=None):
    """Record one timeline step around a block; the block sets `.result` (output, text)."""
    call = ToolCall.start(investigation, agent, tool, input=input)
    call.result = (None, "")
    try:
        yield call
    except Exception as exc:
        call.end(error=f"{type(exc).__name__}: {exc}")
        raise
    call.end(output=call.result[0], output_text=call.result[1])


def run(investigation_id):
    """Run one investigation if this worker can claim it. Never raises for a failed step."""
    try:
        investigation = Investigation.objects.get(pk=investigation_id)
    except Investigation.DoesNotExist:
        log.warning("investigation %s no longer exists; nothing to run", investigation_id)
        return
    if not investigation.claim():
        log.info("investigation %s is %s; not running it", investigation_id, investigation.status)
        return
    try:
        scope_step(investigation)
    except Exception as exc:
        log.exception("investigation %s failed", investigation_id)
        investigation.finish(Investigation.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    investigation.finish(Investigation.Status.COMPLETED)


def scope_step(investigation):
    now = investigation.as_of or timezone.now()
    alerts = list(investigation.alerts.order_by("starts_at"))
    with step(
        investigation,
        ToolCall.Agent.SCOPE,
        "derive_scope",
        {"alerts": [a.fingerprint for a in alerts]},
    ) as call:
        if not alerts:
            raise InvestigationError("the investigation has no alerts to scope")
        scope = derive_scope(alerts, now)
        call.result = (scope.as_dict(), describe(scope))
    investigation.scope = scope.as_dict()
    investigation.baseline_start = scope.baseline_start
    investigation.incident_start = scope.incident_start
    investigation.incident_end = scope.incident_end
    investigation.save(update_fields=["scope", "baseline_start", "incident_start", "incident_end"])
    return scope


def describe(scope):
    services = ", ".join(scope.services) or "none named"
    return (
        f"Scope {scope.selector}; services: {services}. "
        f"Baseline {scope.baseline_start:%H:%M} to {scope.incident_start:%H:%M} UTC, "
        f"incident {scope.incident_start:%H:%M} to {scope.incident_end:%H:%M} UTC."
    )
