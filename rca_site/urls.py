from django.contrib import admin
from django.urls import path

from rca_site import views
from rca_site.api import api

admin.site.site_header = "Rootline"
admin.site.site_title = "Rootline"
admin.site.index_title = "Triage"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", api.urls),
]
