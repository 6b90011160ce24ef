"""Syntax of authentication header values (RFC 3261 §25.1, RFC 7235 §2.1).

Owns reading and writing the value of WWW-Authenticate, Proxy-Authenticate,
Authorization and Proxy-Authorization: an auth scheme followed by a comma
separated list of `name=value` auth-params, values being tokens or quoted strings.
What the parameters mean is sip.auth's business.

Parsing is tolerant of what real user agents send (any amount of LWS, folded
lines, empty list elements, unquoted values that are not strict tokens) but it is
total: malformed input raises AuthParseError and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "AuthParseError",
    "format_auth_value",
    "is_token",
    "parse_auth_value",
]

# RFC 3261 token characters plus the RFC 7230 tchar extras.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~#$&^|"
)
_LWS = " \t\r\n"
# Unquoted values end at these; anything else is accepted because UAs put nonces
# with '/', '=' or ':' in them unquoted and rejecting those buys nothing.
_VALUE_STOP = frozenset(_LWS + ',"')
# A quoted-pair cannot carry CR or LF (RFC 3261 §25.1), so such values could
# only be written by breaking the header; NUL is refused for the same reason.
_UNWRITABLE = frozenset("\r\n\x00")


class AuthParseError(ValueError):
    """The header value is not `scheme [auth-param *("," auth-param)]`."""


def is_token(text: str) -> bool:
    """True if `text` may be written without quotes."""
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def parse_auth_value(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials value into its scheme and auth-params.

    The scheme is returned as written (compare it with `.lower()`); parameter
    names are lowercased, values are unquoted and unescaped. A repeated
    parameter name is an error, since RFC 7235 forbids it and honouring either
    copy would let an intermediary and this code disagree on e.g. the realm.
    The token68 form (`Basic dXNlcjpw`) is not supported and raises too.
    """
    if not isinstance(value, str):
        raise AuthParseError("header value must be str")
    fast = _parse_fast(value)
    if fast is not None:
        return fast
    pos = _skip_lws(value, 0)
    scheme, pos = _read_token(value, pos)
    if not scheme:
        raise AuthParseError("missing auth scheme")
    params: dict[str, str] = {}
    if pos < len(value) and value[pos] not in _LWS:
        raise AuthParseError(f"unexpected {value[pos]!r} after auth scheme")
    while True:
        pos = _skip_lws(value, pos)
        if pos >= len(value):
            return scheme, params
        if value[pos] == ",":
            # RFC 7230 §7: empty list elements must be tolerated.
            pos += 1
            continue
        name, value_text, pos = _read_param(value, pos)
        if name in params:
            raise AuthParseError(f"duplicate parameter {name!r}")
        params[name] = value_text
        pos = _skip_lws(value, pos)
        if pos < len(value):
            if value[pos] != ",":
                raise AuthParseError(f"expected ',' at offset {pos}")
            pos += 1


_SCHEME_RE = re.compile(r"[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]+")
_FAST_PARAM_RE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*"
    r'(?:"([^"\\\r\n\x00]*)"|([^",\s\\]+))[ \t]*(?:,[ \t]*|$)'
)


def _parse_fast(value: str) -> tuple[str, dict[str, str]] | None:
    """The common, plainly written case in a few regex steps; None sends the value to the
    careful parser (escapes, empty list elements, errors and their messages)."""
    m = _SCHEME_RE.match(value)
    if m is None:
        return None
    scheme = m.group(1)
    pos = m.end()
    end = len(value)
    params: dict[str, str] = {}
    match = _FAST_PARAM_RE.match
    while pos < end:
        pm = match(value, pos)
        if pm is None:
            return None
        name = pm.group(1).lower()
        if name in params:
            return None
        text = pm.group(2)
        params[name] = pm.group(3) if text is None else text
        pos = pm.end()
    if not params or value[end - 1] == ",":
        return None
    return scheme, params


def format_auth_value(
    scheme: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    bare: Iterable[str] = (),
) -> str:
    """Write `scheme name="value", ...`, the inverse of parse_auth_value.

    Every value is quoted except for parameters named in `bare` whose value is a
    token: several user agents insist on e.g. `algorithm=MD5` and `nc=00000001`
    unquoted and on `qop="auth"` quoted in challenges but bare in credentials.
    Raises ValueError for a scheme or name that is not a token, or a value with
    CR, LF or NUL, which no quoting can carry.
    """
    if not is_token(scheme):
        raise ValueError(f"auth scheme {scheme!r} is not a token")
    bare_names = {name.lower() for name in bare}
    items = params.items() if isinstance(params, Mapping) else params
    parts: list[str] = []
    for name, text in items:
        if not is_token(name):
            raise ValueError(f"parameter name {name!r} is not a token")
        if any(c in _UNWRITABLE for c in text):
            raise ValueError(f"parameter {name!r} contains CR, LF or NUL")
        if name.lower() in bare_names and is_token(text):
            parts.append(f"{name}={text}")
        else:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{name}="{escaped}"')
    if not parts:
        return scheme
    return f"{scheme} {', '.join(parts)}"


def _skip_lws(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in _LWS:
        pos += 1
    return pos


def _read_token(value: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(value) and value[pos] in _TOKEN_CHARS:
        pos += 1
    return value[start:pos], pos


def _read_param(value: str, pos: int) -> tuple[str, str, int]:
    name, pos = _read_token(value, pos)
    if not name:
        raise AuthParseError(f"expected parameter name at offset {pos}")
    pos = _skip_lws(value, pos)
    if pos >= len(value) or value[pos] != "=":
        raise AuthParseError(f"parameter {name!r} has no '=' (token68 is not supported)")
    pos = _skip_lws(value, pos + 1)
    if pos < len(value) and value[pos] == '"':
        text, pos = _read_quoted(value, pos + 1)
    else:
        start = pos
        while pos < len(value) and value[pos] not in _VALUE_STOP:
            pos += 1
        text = value[start:pos]
        if not text:
            raise AuthParseError(f"parameter {name!r} has an empty value")
    return name.lower(), text, pos


def _read_quoted(value: str, pos: int) -> tuple[str, int]:
    """Read after an opening quote up to and past the closing one."""
    out: list[str] = []
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            if pos + 1 >= len(value):
                break
            out.append(value[pos + 1])
            pos += 2
            continue
        out.append(char)
        pos += 1
    raise AuthParseError("unterminated quoted string")
