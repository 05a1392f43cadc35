"""Keep passwords out of messages: every store and registry builds its error text through here.

Two layers, because neither is enough alone: patterns catch a password wherever it is written
in a recognisable shape (``scheme://user:PW@host``, ``password=PW``, ``'password': 'PW'``),
and the values a store knows to be secret are blanked verbatim (a password echoed back by a
server or a library in some other shape).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

MASK = "***"

# scheme://user:password@  (the password runs to the last '@' before a space or a quote, so an
# unescaped '@' inside it is still covered)
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*):[^\s'\"]*@")
# password=PW, pwd=PW ... in a libpq conninfo, a Redis connection string or a repr()
_KEY_VALUE = re.compile(
    r"(\b(?:password|passwd|pwd|pass|requirepass|masterauth)\s*=\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;&')\]}]*)",
    re.IGNORECASE,
)
# 'password': 'PW' in a dict's repr or JSON
_MAPPING = re.compile(
    r"""((['"])(?:password|passwd|pwd)\2\s*:\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""",
    re.IGNORECASE,
)


def secrets_in(source: str | None) -> list[str]:
    """The passwords written inside a URL, a conninfo or a connection string (may be none)."""
    if not source:
        return []
    found: list[str] = []
    for m in re.finditer(r"://[^:/?#@\s]*:([^\s'\"]*)@", source):
        found.append(m.group(1))
    try:
        u = urlsplit(source.strip())
        if u.password:
            found.append(u.password)
    except ValueError:  # a malformed URL (bad port, bad IPv6): the pattern above still ran
        pass
    for m in _KEY_VALUE.finditer(source):
        value = m.group(2)
        if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1]
        found.append(value)
    return [s for s in found if s]


def redact_text(text: str, *known: str | None) -> str:
    """``text`` with every password in it replaced by ``***``.

    ``known`` are strings whose passwords must not show: a URL / conninfo / connection string
    (its password is taken out of it) or a bare password.
    """
    secrets: set[str] = set()
    for item in known:
        if not item:
            continue
        inside = secrets_in(item)
        if inside or "://" in item:
            secrets.update(inside)
        else:
            secrets.add(item)
    for secret in list(secrets):
        secrets.update({unquote(secret), quote(secret, safe=""), repr(secret)[1:-1]})
    out = _URL_USERINFO.sub(rf"\1:{MASK}@", text)
    out = _KEY_VALUE.sub(rf"\g<1>{MASK}", out)
    out = _MAPPING.sub(rf"\g<1>'{MASK}'", out)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            out = out.replace(secret, MASK)
    return out


def redact_exception(e: BaseException, *known: str | None) -> str:
    """``str(e)`` redacted (the usual text for a message that quotes a library's error)."""
    return redact_text(str(e), *known)
