#!/usr/bin/env python
import os
import sys
from pathlib import Path


def read_local_env(path):
    """Take KEY=VALUE lines of the `.env` that `make run` writes, without overriding the
    environment: so `python manage.py ...` in a second shell talks to the same instance."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            os.environ.setdefault(name, value)


if __name__ == "__main__":
    read_local_env(Path(__file__).resolve().parent / ".env")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rca_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
