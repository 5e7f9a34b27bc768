"""Who is calling: the result of authentication, passed into every engine call that needs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

ROLES = ("customer", "partner", "staff")


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller within exactly one tenant. Anonymous callers have neither user nor key."""

    tenant_id: UUID
    user_id: UUID | None = None
    role: str | None = None                 # customer | partner | staff, for users
    permissions: frozenset[str] = field(default_factory=frozenset)  # staff permissions or key scopes
    api_key_id: UUID | None = None
    plan: str | None = None                 # API key plan: standard | enterprise
    token_id: str | None = None             # the access token's jti
    token_expires_at: int | None = None     # epoch seconds

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None and self.api_key_id is None

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def is_partner(self) -> bool:
        return self.role == "partner"

    def can(self, permission: str) -> bool:
        """Staff tokens and API keys hold explicit permissions; '*' grants all."""
        return "*" in self.permissions or permission in self.permissions

    @property
    def scope(self) -> str:
        """Stable identity for per-caller state (idempotency keys, rate limits)."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.api_key_id is not None:
            return f"apikey:{self.api_key_id}"
        return "anonymous"
