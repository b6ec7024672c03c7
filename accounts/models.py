import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "rl_"  # noqa: S105 (a marker, not a secret)


def hash_token(token):
    """Tokens are long random strings, so one SHA-256 is enough to keep them safe at rest."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A per-user token for the JSON API. Only its hash is stored; it is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="the first characters, to tell tokens apart")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user, name=""):
        """Create a token for `user`; returns (row, the token in clear, which is not kept)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(
            user=user, name=name, token_hash=hash_token(token), prefix=token[:10]
        )
        return row, token

    @classmethod
    def authenticate(cls, token):
        """The active token row for `token`, or None; notes when it was last used."""
        row = (
            cls.objects.active().select_related("user").filter(token_hash=hash_token(token)).first()
        )
        if row is not None:
            row.last_used_at = timezone.now()
            row.save(update_fields=["last_used_at"])
        return row
