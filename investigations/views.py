"""The SRE's pages: the overview and an investigation's live timeline (server-rendered, htmx).

Every page needs a login. The timeline grows in place: its partial returns only the steps
after a cursor (the last sequence shown) and answers 286, htmx's "stop polling", once the
investigation has ended and nothing is left to show. Without JavaScript the pages are
plain links and a reload shows the same.
"""

import statistics
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Min, Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.models import Alert
from investigations.models import Investigation
from investigations.scope import ScopeError, check_window, parse_matchers

RECENT = 25
SINCE_CHOICES = [
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("6h", "last 6 hours"),
    ("24h", "last 24 hours"),
    ("range", "from start to end below"),
]
SINCE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6)}
SINCE["24h"] = timedelta(hours=24)
STATS_DAYS = 7
STOP_POLLING = 286  # htmx stops polling on this status


@login_required
def overview(request):
    """Investigations running now, and the latest ones with their root cause in a line."""
    investigations = Investigation.objects.prefetch_related("alerts")
    active = active_investigations(investigations)
    latest = investigations.exclude(pk__in=active.values("pk")).order_by("-created_at")[:RECENT]
    return render(
        request,
        "investigations/overview.html",
        {
            "active": active,
            "latest": latest,
            "empty": not investigations.exists(),
            "firing": firing_by_severity(),
            "numbers": numbers(timezone.now()),
        },
    )


def active_investigations(investigations=Investigation.objects):
    """Investigations queued or running, newest first."""
    active = [Investigation.Status.QUEUED, Investigation.Status.RUNNING]
    return investigations.filter(status__in=active).order_by("-created_at")


def firing_by_severity():
    """Alerts firing now, counted by severity, most first: [{"severity", "count"}]."""
    firing = Alert.objects.filter(status=Alert.Status.FIRING)
    return firing.values("severity").annotate(count=Count("pk")).order_by("-count")


def numbers(now, days=STATS_DAYS):
    """What an SRE lead looks at, over the last `days`: time from alert to report (median),
    investigations and LLM cost per day, and the share of reports marked correct."""
    since = now - timedelta(days=days)
    recent = Investigation.objects.filter(created_at__gte=since)
    done = recent.filter(status=Investigation.Status.COMPLETED).annotate(
        alerted=Min("alerts__first_seen")
    )
    waits = sorted(
        (i.finished_at - i.alerted).total_seconds()
        for i in done.only("finished_at")
        if i.alerted and i.finished_at
    )
    judged = recent.exclude(feedback="")
    totals = recent.aggregate(cost=Sum("cost_usd"), count=Count("pk"))
    return {
        "days": days,
        "median_seconds_to_report": statistics.median(waits) if waits else None,
        "per_day": (totals["count"] or 0) / days,
        "cost_per_day": (totals["cost"] or 0) / days,
        "correct_share": (
            judged.filter(feedback=Investigation.Feedback.CORRECT).count() / judged.count()
            if judged.exists()
            else None
        ),
        "judged": judged.count(),
    }


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
    done, rest, ended = investigation.steps_after(after)
    return {
        "done": nest(done),
        "tail": nest(rest),
        "cursor": done[-1].sequence if done else after,
        "ended": ended,
        "can_ask": bool(settings.ANTHROPIC_API_KEY),
        "feedback_form": FeedbackForm(
            initial={
                "feedback": investigation.feedback,
                "feedback_text": investigation.feedback_text,
            }
        ),
    }


def nest(steps):
    """`steps` (in sequence) as trees: each step's `delegated` are the steps among them it
    started (a lead's delegation holds its specialist's steps, in their order). A step
    whose parent is not among them stays at the top, marked nested."""
    by_id = {step.pk: step for step in steps}
    roots = []
    for step in steps:
        step.delegated = []
        parent = by_id.get(step.parent_id)
        (parent.delegated if parent else roots).append(step)
    return roots


class FeedbackForm(forms.Form):
    feedback = forms.ChoiceField(choices=Investigation.Feedback.choices, widget=forms.RadioSelect)
    feedback_text = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )


class QuestionForm(forms.Form):
    question = forms.CharField(min_length=3, max_length=2000)


@login_required
@require_POST
def investigation_action(request, pk, action):
    """Re-run, cancel, feedback or a follow-up question; back to the page with a message."""
    investigation = get_object_or_404(Investigation, pk=pk)
    target = investigation
    if action == "rerun":
        target = investigation.rerun(requested_by=request.user)
        messages.success(request, f"Investigation {target.pk} queued: the same alerts again.")
    elif action == "cancel":
        if investigation.cancel(f"cancelled by {request.user}"):
            messages.success(request, "Cancelled; a running investigation stops at its next step.")
        else:
            messages.error(request, f"It is {investigation.status}: nothing to cancel.")
    elif action == "feedback":
        form = FeedbackForm(request.POST)
        if form.is_valid():
            investigation.record_feedback(
                form.cleaned_data["feedback"], form.cleaned_data["feedback_text"]
            )
            messages.success(request, "Thank you: feedback saved.")
        else:
            messages.error(request, "Pick correct, partly correct or wrong.")
    elif action == "ask":
        form = QuestionForm(request.POST)
        if problem := investigation.why_no_question():
            messages.error(request, problem)
        elif not form.is_valid():
            messages.error(request, "Write a question of 3 to 2,000 characters.")
        else:
            investigation.ask(form.cleaned_data["question"], requested_by=request.user)
            messages.success(request, "Question queued; the answer appears below.")
    else:
        return HttpResponse(f"unknown action {action!r}", status=404)
    return redirect("investigation", target.pk)


class AskForm(forms.Form):
    """A question without an alert: what to look for, where (label matchers), and when."""

    question = forms.CharField(
        min_length=3,
        max_length=2000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "e.g. Why did checkout get slow this morning?"}
        ),
    )
    matchers = forms.CharField(
        required=False,
        max_length=1000,
        help_text='Equality matchers that bound every query, e.g. namespace="shop", '
        'service="checkout". Empty: every series with a service label.',
        widget=forms.TextInput(attrs={"size": 60, "placeholder": 'namespace="shop"'}),
    )
    since = forms.ChoiceField(choices=SINCE_CHOICES, initial="1h")
    start = forms.DateTimeField(
        required=False,
        help_text="UTC",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    end = forms.DateTimeField(
        required=False,
        help_text="UTC",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now or timezone.now()

    def clean_matchers(self):
        try:
            return parse_matchers(self.cleaned_data["matchers"])
        except ScopeError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        since = data.get("since")
        if since in SINCE:
            data["start"], data["end"] = self.now - SINCE[since], self.now
        elif since == "range":
            if not data.get("start"):
                self.add_error("start", "Give a start time, or pick one of the last … ranges.")
                return data
            data["end"] = data.get("end") or self.now
        else:
            return data
        try:
            data["start"], data["end"] = check_window(data["start"], data["end"], self.now)
        except ScopeError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@login_required
def ask(request):
    """Start an investigation without an alert; then to its page."""
    form = AskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        investigation = Investigation.open_question(
            data["question"].strip(),
            data["matchers"],
            data["start"],
            data["end"],
            requested_by=request.user,
        )
        messages.success(request, "Investigation queued; it starts within a second or two.")
        return redirect("investigation", investigation.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "investigations/ask.html", {"form": form}, status=status)
