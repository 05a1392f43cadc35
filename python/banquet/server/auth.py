"""Optional bearer-token auth (``feature_server: auth: {type: token, tokens_env: VAR}``).

Tokens come from the environment variable named by ``tokens_env`` (comma-separated, so one
can be rotated in while the old one still works), never from the YAML file. Every request
but ``GET /health`` must carry ``Authorization: Bearer <token>``; the check runs before the
body is read, so a refused request reads and writes nothing.
"""

from __future__ import annotations

import hmac
import os

from banquet.config import ServerAuthConfig
from banquet.errors import ConfigError


class TokenAuth:
    def __init__(self, tokens: list[str]) -> None:
        if not tokens:
            raise ConfigError("token auth needs at least one token")
        self._tokens = [t.encode() for t in tokens]

    def allows(self, header: bytes | None) -> bool:
        """Whether an ``Authorization`` header value carries one of the tokens.

        ``hmac.compare_digest`` against every token, without stopping at a match, so the
        time taken says nothing about which bytes of which token were right."""
        if header is None:
            return False
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        ok = False
        for known in self._tokens:
            ok |= hmac.compare_digest(token, known)
        return ok


def load_auth(config: ServerAuthConfig) -> TokenAuth | None:
    """The configured authenticator, or None when auth is off."""
    if config.type == "no_auth":
        return None
    raw = os.environ.get(config.tokens_env, "")
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    if not tokens:
        raise ConfigError(
            f"feature_server.auth.type is 'token' but the environment variable "
            f"{config.tokens_env} is unset or empty; set it to one or more comma-separated "
            "tokens (or set feature_server.auth.tokens_env to the variable that holds them)"
        )
    bad = [t for t in tokens if not t.isascii() or any(c.isspace() for c in t)]
    if bad:
        raise ConfigError(
            f"{config.tokens_env}: tokens must be ASCII without spaces (one is not); "
            "separate tokens with commas"
        )
    return TokenAuth(tokens)
