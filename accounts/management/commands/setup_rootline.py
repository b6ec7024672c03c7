import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create the admin user when there is none (password from ROOTLINE_ADMIN_PASSWORD, "
        "else generated and printed once) and print how to reach and feed this Rootline."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="where Rootline is served"
        )

    def handle(self, url, **options):
        url = url.rstrip("/")
        login = self.ensure_admin()
        token = settings.ROOTLINE_WEBHOOK_TOKEN
        webhook = f"{url}/webhooks/alertmanager"
        self.stdout.write(
            f"""
Rootline is starting on {url}/
  dashboard      {url}/
  admin          {url}/admin/   {login}
  webhook        {webhook}
  webhook token  {token or "(not set: ROOTLINE_WEBHOOK_TOKEN)"}
  health         {url}/healthz

Try it:  .venv/bin/python manage.py send_test_alert   (in a second shell, from this folder)

Alertmanager receiver (alertmanager.yml):
receivers:
  - name: rootline
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token or "<ROOTLINE_WEBHOOK_TOKEN>"}
"""
        )

    def ensure_admin(self):
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            names = ", ".join(users.filter(is_superuser=True).values_list("username", flat=True))
            return f"(log in as {names}; password as set before)"
        password = os.getenv("ROOTLINE_ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        users.create_superuser(ADMIN_USERNAME, email="", password=password)
        if generated:
            return f"user {ADMIN_USERNAME}, password {password}  (generated, shown only this once)"
        return f"user {ADMIN_USERNAME}, password from ROOTLINE_ADMIN_PASSWORD"
