from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Max, Q
from django.utils import timezone

from alerts.models import Alert

TASK = "investigations.tasks.run_investigation"
FOLLOWUP_TASK = "investigations.tasks.answer_followup"
SEQUENCE_RETRIES = 5
SCAN_BACKENDS = {"scan_metrics": "prometheus", "scan_logs": "loki", "scan_paths": "loki"}


class Investigation(models.Model):
    """One root-cause investigation: why it exists, where it stands, what it found."""

    class Kind(models.TextChoices):
        ALERT_GROUP = "alert_group", "alert group"
        QUESTION = "question", "question"
        RERUN = "rerun", "re-run"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    class Feedback(models.TextChoices):
        CORRECT = "correct"
        PARTLY = "partly", "partly correct"
        WRONG = "wrong"

    kind = models.CharField(max_length=20, choices=Kind, default=Kind.ALERT_GROUP)
    alerts = models.ManyToManyField(Alert, related_name="investigations", blank=True)
    group_key = models.TextField(blank=True)
    question = models.TextField(blank=True)
    rerun_of = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="reruns"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    status = models.CharField(max_length=20, choices=Status, default=Status.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    as_of = models.DateTimeField(
        null=True, blank=True, help_text="the investigation's 'now': no data after it is read"
    )
    scope = models.JSONField(default=dict, blank=True)
    baseline_start = models.DateTimeField(null=True, blank=True)
    incident_start = models.DateTimeField(null=True, blank=True)
    incident_end = models.DateTimeField(null=True, blank=True)

    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4, default=0)

    suspects = models.JSONField(
        default=list,
        blank=True,
        help_text="services ranked by the signal scan: [{service, score, evidence: [...]}]",
    )
    report = models.JSONField(null=True, blank=True)
    conversation = models.JSONField(
        default=list, blank=True, help_text="the lead agent's messages, for follow-up questions"
    )
    followups = models.JSONField(
        default=list,
        blank=True,
        help_text="follow-up questions: [{question, asked_at, status, answer, steps, error}]",
    )
    report_text = models.TextField(blank=True)
    notifications = models.JSONField(
        default=list,
        blank=True,
        help_text="the report's notifications (investigations.notify): "
        "[{channel, target, status, attempts, last_error, sent_at, next_attempt_at}]",
    )

    feedback = models.CharField(max_length=10, choices=Feedback, blank=True)
    feedback_text = models.TextField(blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # ingest: "an investigation of this alert group started within the window"
            models.Index(fields=["group_key", "-created_at"], name="investigation_group"),
            # lists: newest first, by status
            models.Index(fields=["status", "-created_at"], name="investigation_status"),
            models.Index(fields=["-created_at"], name="investigation_created"),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"investigation {self.pk} ({self.status})"

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def evidence_steps(self):
        """The timeline step of each signal scan that found evidence, by kind."""
        report = self.report or {}
        return (report.get("signals") or report).get("evidence_steps") or {}

    @property
    def report_source(self):
        """ "agents" when the Claude agents wrote the report, "signals" for the scan's own."""
        return (self.report or {}).get("source", "")

    @property
    def waiting_for_answer(self):
        """A follow-up question is queued: the timeline will grow again."""
        return any(f.get("status") == "queued" for f in self.followups)

    def steps_after(self, after):
        """The timeline after step `after`: (done, rest, ended). `done` are the steps in a
        row that have ended (a reader shows them for good and moves its cursor to the
        last); `rest` are those still running and any after them (shown again on the next
        read); `ended` once the investigation, and any follow-up, is over.

        The investigation's status was read before the steps are read here, so a step
        written just before the end is never missed.
        """
        ended = self.is_finished and not self.waiting_for_answer
        steps = self.steps.filter(sequence__gt=after).select_related("parent")
        steps = list(steps.order_by("sequence"))
        done = []
        for step in steps:
            if step.finished_at is None and not ended:
                break
            done.append(step)
        return done, steps[len(done) :], ended

    def enqueue(self):
        """Queue the investigation for a worker, atomically with the current transaction.

        With django-q2's ORM broker on this database (Rootline's setting) the task row is
        written in the caller's transaction: the investigation and its task commit together
        or not at all, and no worker sees the task before the investigation exists. With
        any other broker the task is sent once the transaction has committed.
        """
        from django_q.conf import Conf
        from django_q.tasks import async_task

        pk = self.pk

        def send():
            async_task(TASK, pk, task_name=f"investigation-{pk}")

        if Conf.ORM and (self._state.db or "default") == Conf.ORM:
            send()
        else:
            transaction.on_commit(send)

    def claim(self):
        """Take the investigation for this worker; False when another worker has it.

        A queued investigation can be claimed, and so can one left `running` past the
        task timeout by a worker that died (django-q2 re-delivers its task), while it has
        attempts left: django-q2 counts only attempts that returned, so the task of a
        worker killed every time comes back for ever, and only this count stops it.
        """
        now = timezone.now()
        stale = now - settings.ROOTLINE_INVESTIGATION_TIMEOUT
        claimed = Investigation.objects.filter(
            Q(status=self.Status.QUEUED)
            | Q(
                status=self.Status.RUNNING,
                started_at__lt=stale,
                attempts__lt=settings.Q_CLUSTER["max_attempts"],
            ),
            pk=self.pk,
        ).update(status=self.Status.RUNNING, started_at=now, attempts=models.F("attempts") + 1)
        if claimed == 1:
            self.refresh_from_db()
        return claimed == 1

    def abandoned_on_last_attempt(self):
        """Left `running` past the task timeout with no attempt left: its worker died
        (or hung and was stopped) and no other worker may take it over."""
        self.refresh_from_db(fields=["status", "started_at", "attempts"])
        stale = timezone.now() - settings.ROOTLINE_INVESTIGATION_TIMEOUT
        return (
            self.status == self.Status.RUNNING
            and self.started_at is not None
            and self.started_at < stale
            and self.attempts >= settings.Q_CLUSTER["max_attempts"]
        )

    def finish(self, status, error=""):
        """End a running investigation; one cancelled meanwhile stays cancelled."""
        now = timezone.now()
        ended = Investigation.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
            status=status, error=error, finished_at=now
        )
        if ended:
            self.status, self.error, self.finished_at = status, error, now
        else:
            self.refresh_from_db(fields=["status", "error", "finished_at"])

    def cancel(self, reason="cancelled"):
        """Stop a queued or running investigation; a running one stops at its next step."""
        now = timezone.now()
        cancelled = Investigation.objects.filter(
            pk=self.pk, status__in=[self.Status.QUEUED, self.Status.RUNNING]
        ).update(status=self.Status.CANCELLED, error=reason, finished_at=now)
        self.refresh_from_db(fields=["status", "error", "finished_at"])
        return bool(cancelled)

    def record_feedback(self, feedback, text=""):
        """The on-call engineer's verdict on the report: correct, partly or wrong."""
        self.feedback, self.feedback_text, self.feedback_at = feedback, text, timezone.now()
        self.save(update_fields=["feedback", "feedback_text", "feedback_at"])

    def why_no_question(self):
        """Why a follow-up question cannot be asked now, or "" when it can."""
        if not settings.ANTHROPIC_API_KEY:
            return "Follow-up questions need a model: set ANTHROPIC_API_KEY."
        if self.status != self.Status.COMPLETED:
            return f"Investigation {self.pk} is {self.status}; ask once it has completed."
        return ""

    def ask(self, question, requested_by=None):
        """Queue a follow-up question; returns its index in `followups`."""
        from django_q.tasks import async_task

        with transaction.atomic():
            row = Investigation.objects.select_for_update().get(pk=self.pk)
            row.followups.append(
                {
                    "question": question,
                    "asked_at": timezone.now().isoformat(),
                    "asked_by": str(requested_by or ""),
                    "status": "queued",
                }
            )
            row.save(update_fields=["followups"])
            index = len(row.followups) - 1
            async_task(FOLLOWUP_TASK, self.pk, index, task_name=f"followup-{self.pk}-{index}")
        self.followups = row.followups
        return index

    @classmethod
    def open_question(cls, question, matchers, start, end, requested_by=None):
        """An investigation without an alert: `question` about the series matching
        `matchers` (label: value) between `start` and `end`, queued at once. The scope
        step reads the matchers and the window from the row; no data after `end` is read.
        """
        with transaction.atomic():
            investigation = cls.objects.create(
                kind=cls.Kind.QUESTION,
                question=question,
                requested_by=requested_by,
                scope={"matchers": matchers},
                incident_start=start,
                incident_end=end,
                as_of=end,
            )
            investigation.enqueue()
        return investigation

    def rerun(self, requested_by=None):
        """A new investigation of the same alerts (or question), queued at once."""
        with transaction.atomic():
            again = Investigation.objects.create(
                kind=self.Kind.RERUN,
                group_key=self.group_key,
                question=self.question,
                rerun_of=self,
                requested_by=requested_by,
                as_of=self.as_of,
                # a question's matchers and window (alerts are scoped afresh)
                scope={"matchers": self.scope.get("matchers", {})} if self.question else {},
                incident_start=self.incident_start if self.question else None,
                incident_end=self.incident_end if self.question else None,
            )
            again.alerts.set(self.alerts.all())
            again.enqueue()
        return again


class ToolCall(models.Model):
    """One entry of an investigation's timeline, written when it starts and when it ends."""

    class Agent(models.TextChoices):
        SCOPE = "scope"
        SIGNALS = "signals"
        LEAD = "lead"
        LOGS = "logs"
        METRICS = "metrics"

    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        ERROR = "error"

    investigation = models.ForeignKey(Investigation, models.CASCADE, related_name="steps")
    parent = models.ForeignKey(
        "self", models.CASCADE, null=True, blank=True, related_name="children"
    )
    sequence = models.PositiveIntegerField()
    agent = models.CharField(max_length=20, choices=Agent)
    tool = models.CharField(max_length=100)
    reason = models.TextField(blank=True, help_text="why the agent asked for this step")
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True, help_text="structured result")
    output_text = models.TextField(blank=True, help_text="the result as given to the model")
    status = models.CharField(max_length=10, choices=Status, default=Status.RUNNING)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # the timeline cursor: steps of one investigation after a sequence number
            models.UniqueConstraint(fields=["investigation", "sequence"], name="step_sequence"),
        ]
        indexes = [
            # /metrics counts every step by these at each scrape: read from the index alone
            models.Index(fields=["agent", "tool", "status", "duration_ms"], name="step_metrics"),
        ]
        ordering = ["investigation", "sequence"]

    def __str__(self):
        return f"#{self.sequence} {self.agent}.{self.tool} ({self.status})"

    @classmethod
    def start(cls, investigation, agent, tool, input=None, parent=None, reason=""):
        """Write a running step with the next sequence number of its investigation."""
        for _ in range(SEQUENCE_RETRIES):
            try:
                with transaction.atomic():
                    last = investigation.steps.aggregate(last=Max("sequence"))["last"] or 0
                    return cls.objects.create(
                        investigation=investigation,
                        parent=parent,
                        sequence=last + 1,
                        agent=agent,
                        tool=tool,
                        input=input or {},
                        reason=reason,
                    )
            except IntegrityError:
                continue  # another writer took that sequence number; take the next
        raise IntegrityError(f"no free timeline sequence for {investigation}")

    @property
    def nested(self):
        """A specialist's step, under the lead's delegation."""
        return self.parent_id is not None

    @property
    def query(self):
        """The LogQL or PromQL the step ran, if any."""
        output = self.output if isinstance(self.output, dict) else {}
        return output.get("query") or (self.input or {}).get("query") or ""

    @property
    def links(self):
        """Grafana Explore links that open the step's query over its range, where
        configured (ROOTLINE_GRAFANA_*): the agents' tools made them; a signal scan's
        are made from its query and incident window."""
        from investigations.tools.links import explore_link

        output = self.output if isinstance(self.output, dict) else {}
        if output.get("links"):
            return list(output["links"])
        backend = SCAN_BACKENDS.get(self.tool)
        window = (self.input or {}).get("incident")
        if backend is None or not self.query or not window:
            return []
        start, end = (datetime.fromisoformat(t) for t in window)
        link = explore_link(backend, self.query, start, end)
        return [link] if link else []

    def end(self, output=None, output_text="", error="", input_tokens=0, output_tokens=0):
        self.finished_at = timezone.now()
        self.duration_ms = int((self.finished_at - self.started_at).total_seconds() * 1000)
        self.status = self.Status.ERROR if error else self.Status.OK
        self.output = output
        self.output_text = output_text
        self.error = error
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.save(
            update_fields=[
                "finished_at",
                "duration_ms",
                "status",
                "output",
                "output_text",
                "error",
                "input_tokens",
                "output_tokens",
            ]
        )
