"""The SRE's pages: the overview and an investigation's live timeline (server-rendered, htmx).

Every page needs a login. The timeline grows in place: its partial returns only the steps
after a cursor (the last sequence shown) and answers 286, htmx's "stop polling", once the
investigation has ended and nothing is left to show. Without JavaScript the pages are
plain links and a reload shows the same.
"""

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from investigations.models import Investigation

RECENT = 25
STOP_POLLING = 286  # htmx stops polling on this status


@login_required
def overview(request):
    """Investigations running now, and the latest ones with their root cause in a line."""
    investigations = Investigation.objects.prefetch_related("alerts")
    active = investigations.filter(
        Q(status=Investigation.Status.RUNNING) | Q(status=Investigation.Status.QUEUED)
    ).order_by("-created_at")
    latest = investigations.exclude(pk__in=active.values("pk")).order_by("-created_at")[:RECENT]
    return render(
        request,
        "investigations/overview.html",
        {"active": active, "latest": latest, "empty": not investigations.exists()},
    )


@login_required
def investigation_detail(request, pk):
    investigation = get_object_or_404(Investigation.objects.prefetch_related("alerts"), pk=pk)
    return render(
        request,
        "investigations/detail.html",
        {"investigation": investigation, **_timeline(investigation, after=0)},
    )


@login_required
def investigation_steps(request, pk):
    """The timeline after step `?after=<sequence>`: the steps ended since, then a new tail
    (steps still running and the poller). 286 once the investigation has ended: htmx
    swaps the last rows in and stops polling."""
    investigation = get_object_or_404(Investigation, pk=pk)
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        return HttpResponse("after must be a step number", status=400)
    context = {"investigation": investigation, "partial": True, **_timeline(investigation, after)}
    status = STOP_POLLING if context["ended"] else 200
    return render(request, "investigations/_timeline_tail.html", context, status=status)


def _timeline(investigation, after):
    """Steps after `after`, split into the ended ones in a row (`done`, shown for good) and
    the rest (`tail`, shown again on the next poll); `cursor` is the last done step."""
    # Status first, steps second: a step written just before the end is never missed.
    investigation.refresh_from_db()
    ended = investigation.is_finished
    steps = list(investigation.steps.filter(sequence__gt=after).order_by("sequence"))
    done = []
    for step in steps:
        if step.finished_at is None and not ended:
            break
        done.append(step)
    return {
        "done": done,
        "tail": steps[len(done) :],
        "cursor": done[-1].sequence if done else after,
        "ended": ended,
    }
