from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken


class Command(BaseCommand):
    help = (
        "Print a new JSON API token for USERNAME (alone on the last line); only its hash is kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, username, name, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        row, token = ApiToken.issue(user, name=name)
        self.stderr.write(f"API token {row.prefix}… for {username}; it is shown only now:")
        self.stdout.write(token)
