from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from alerts import views as alert_views
from investigations import views as investigation_views
from rca_site import views
from rca_site.api import api

admin.site.site_header = "Rootline"
admin.site.site_title = "Rootline"
admin.site.index_title = "Triage"

urlpatterns = [
    path("", investigation_views.overview, name="home"),
    path("ask/", investigation_views.ask, name="ask"),
    path(
        "investigations/<int:pk>/", investigation_views.investigation_detail, name="investigation"
    ),
    path(
        "investigations/<int:pk>/steps",
        investigation_views.investigation_steps,
        name="investigation_steps",
    ),
    path(
        "investigations/<int:pk>/<str:action>",
        investigation_views.investigation_action,
        name="investigation_action",
    ),
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/<int:pk>/", alert_views.alert_detail, name="alert"),
    # Log in and out, and change one's password; no reset by e-mail (Rootline sends none).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", api.urls),
]
