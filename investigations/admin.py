import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from investigations.models import Investigation, ToolCall
from investigations.signals.report import evidence_gist


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    fk_name = "investigation"
    extra = 0
    can_delete = False
    fields = [
        "sequence",
        "agent",
        "tool",
        "status",
        "started_at",
        "duration_ms",
        "parent",
        "summary",
        "error",
    ]
    readonly_fields = fields
    ordering = ["sequence"]

    @admin.display(description="output")
    def summary(self, step):
        return step.output_text[:500]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Investigation)
class InvestigationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "alert_names",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "feedback",
    ]
    list_filter = ["status", "kind", "feedback"]
    search_fields = [
        "group_key",
        "question",
        "report_text",
        "alerts__alertname",
        "alerts__fingerprint",
    ]
    date_hierarchy = "created_at"
    readonly_fields = [
        "kind",
        "group_key",
        "question",
        "rerun_of",
        "requested_by",
        "status",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "as_of",
        "scope_pretty",
        "baseline_start",
        "incident_start",
        "incident_end",
        "model",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
        "report_text",
        "suspects_pretty",
        "report_pretty",
        "followups_pretty",
        "notifications_pretty",
    ]
    exclude = [
        "scope",
        "report",
        "suspects",
        "alerts",
        "conversation",
        "followups",
        "notifications",
    ]
    inlines = [ToolCallInline]
    actions = ["investigate_again", "cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("alerts")

    @admin.display(description="alerts")
    def alert_names(self, investigation):
        names = sorted({a.alertname for a in investigation.alerts.all()})
        return ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")

    @admin.display(description="scope")
    def scope_pretty(self, investigation):
        return format_html("<pre>{}</pre>", json.dumps(investigation.scope, indent=2))

    @admin.display(description="suspects")
    def suspects_pretty(self, investigation):
        """The ranked suspects of the signal scan, one line each, best first."""
        if not investigation.suspects:
            return "-"
        rows = format_html_join(
            "",
            "<li><b>{}</b> ({}): {}</li>",
            (
                (s["service"], f"{s['score']:.2f}", _evidence_line(s.get("evidence", [])))
                for s in investigation.suspects[:10]
            ),
        )
        return format_html("<ol>{}</ol>", rows)

    @admin.display(description="follow-up questions")
    def followups_pretty(self, investigation):
        if not investigation.followups:
            return "-"
        return format_html_join(
            "",
            "<p><b>Q:</b> {}<br><b>A</b> ({}): {}</p>",
            (
                (f["question"], f["status"], f.get("answer") or f.get("error") or "...")
                for f in investigation.followups
            ),
        )

    @admin.display(description="notifications")
    def notifications_pretty(self, investigation):
        """Each notification of the report: where (host only), how it went."""
        if not investigation.notifications:
            return "-"
        return format_html_join(
            "",
            "<p><b>{}</b> ({}): {}, {} attempt(s) {}</p>",
            (
                (
                    n["channel"],
                    n["target"],
                    n["status"],
                    n["attempts"],
                    n["last_error"] or n["sent_at"] or "",
                )
                for n in investigation.notifications
            ),
        )

    @admin.display(description="report")
    def report_pretty(self, investigation):
        return format_html("<pre>{}</pre>", json.dumps(investigation.report, indent=2))

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel (a running one stops at its next step)")
    def cancel(self, request, queryset):
        stopped = sum(
            investigation.cancel(f"cancelled by {request.user}") for investigation in queryset
        )
        self.message_user(request, f"{stopped} investigation(s) cancelled.")

    @admin.action(description="Investigate again")
    def investigate_again(self, request, queryset):
        again = [investigation.rerun(requested_by=request.user) for investigation in queryset]
        self.message_user(
            request,
            f"Queued {len(again)} new investigation(s): " + ", ".join(str(i.pk) for i in again),
        )


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    list_display = [
        "investigation",
        "sequence",
        "agent",
        "tool",
        "status",
        "started_at",
        "duration_ms",
    ]
    list_filter = ["agent", "status", "tool"]
    readonly_fields = [f.name for f in ToolCall._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _evidence_line(evidence):
    return "; ".join(filter(None, map(evidence_gist, evidence[:3]))) or "-"
