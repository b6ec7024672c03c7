import contextlib
import json

from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html

from alerts.models import Alert, WebhookDelivery
from alerts.views import label_matches


class LabelFilter(admin.SimpleListFilter):
    """Filter alerts by the value of one label (the choices are the values seen)."""

    label_names = ()
    max_choices = 100

    def lookups(self, request, model_admin):
        values = set()
        for name in self.label_names:
            values.update(
                Alert.objects.filter(**{f"labels__{name}__isnull": False})
                .values_list(f"labels__{name}", flat=True)
                .distinct()[: self.max_choices]
            )
        return [(v, v) for v in sorted(str(v) for v in values)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(label_matches(self.label_names, self.value()))


class NamespaceFilter(LabelFilter):
    title = parameter_name = "namespace"
    label_names = ("namespace",)


class ServiceFilter(LabelFilter):
    title = parameter_name = "service"

    @property
    def label_names(self):
        return settings.ROOTLINE_SERVICE_LABELS


class InvestigationInline(admin.TabularInline):
    model = Alert.investigations.through
    extra = 0
    verbose_name = "investigation"
    can_delete = False
    readonly_fields = ["investigation"]

    def has_add_permission(self, request, obj=None):
        return False


def pretty_json(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "alertname",
        "status",
        "severity",
        "service",
        "namespace",
        "starts_at",
        "ends_at",
        "last_seen",
        "receive_count",
    ]
    list_filter = ["status", "severity", "alertname", ServiceFilter, NamespaceFilter]
    search_fields = ["fingerprint", "alertname", "labels", "annotations"]
    date_hierarchy = "starts_at"
    readonly_fields = [
        "fingerprint",
        "starts_at",
        "ends_at",
        "status",
        "alertname",
        "severity",
        "labels_pretty",
        "annotations_pretty",
        "generator_link",
        "group_key",
        "receive_count",
        "first_seen",
        "last_seen",
        "first_delivery",
        "resolved_delivery",
    ]
    exclude = ["labels", "annotations", "generator_url"]
    inlines = [InvestigationInline]

    @admin.display(description="service")
    def service(self, alert):
        return next(
            (alert.labels[n] for n in settings.ROOTLINE_SERVICE_LABELS if n in alert.labels), ""
        )

    @admin.display(description="namespace")
    def namespace(self, alert):
        return alert.label("namespace")

    @admin.display(description="labels")
    def labels_pretty(self, alert):
        return pretty_json(alert.labels)

    @admin.display(description="annotations")
    def annotations_pretty(self, alert):
        return pretty_json(alert.annotations)

    @admin.display(description="generator")
    def generator_link(self, alert):
        if not alert.generator_url.startswith(("http://", "https://")):
            return alert.generator_url
        return format_html(
            '<a href="{}" rel="noreferrer">{}</a>', alert.generator_url, alert.generator_url
        )

    def has_add_permission(self, request):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "outcome",
        "status_code",
        "remote_addr",
        "body_bytes",
        "alerts_received",
        "alerts_new",
    ]
    list_filter = ["outcome", "status_code"]
    search_fields = ["error", "remote_addr"]
    date_hierarchy = "received_at"
    exclude = ["body", "headers"]
    readonly_fields = [
        "received_at",
        "remote_addr",
        "headers_pretty",
        "body_pretty",
        "body_bytes",
        "body_truncated",
        "outcome",
        "status_code",
        "error",
        "group_key",
        "alerts_received",
        "alerts_new",
    ]

    @admin.display(description="headers")
    def headers_pretty(self, delivery):
        return pretty_json(delivery.headers)

    @admin.display(description="body")
    def body_pretty(self, delivery):
        text = delivery.body_text()
        with contextlib.suppress(ValueError):  # not JSON (or truncated): shown as received
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
