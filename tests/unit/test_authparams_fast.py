"""The regex fast path of parse_auth_value agrees with the careful parser on every input it
accepts, and hands everything else to the careful parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sip import authparams
from sip.authparams import AuthParseError, format_auth_value, parse_auth_value

_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!%*+`'",
                 min_size=1, max_size=12)
_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                 max_size=20)


def _careful(value: str) -> tuple[str, dict[str, str]]:
    saved = authparams._parse_fast
    authparams._parse_fast = lambda v: None  # type: ignore[assignment]
    try:
        return parse_auth_value(value)
    finally:
        authparams._parse_fast = saved  # type: ignore[assignment]


@given(st.dictionaries(_token, _value, min_size=1, max_size=6), st.sampled_from([", ", ",", " , "]))
def test_fast_path_matches_careful_parser(params: dict[str, str], sep: str) -> None:
    lowered = {k.lower(): v for k, v in params.items()}
    if len(lowered) != len(params):
        return
    # each parameter formatted alone, then joined: the separator never touches a value
    parts = [format_auth_value("Digest", {k: v}, bare=("algorithm", "qop", "nc"))
             .removeprefix("Digest ") for k, v in params.items()]
    text = "Digest " + sep.join(parts)
    fast = authparams._parse_fast(text)
    careful = _careful(text)
    assert careful == ("Digest", lowered)
    if fast is not None:
        assert fast == careful


@given(st.text(max_size=80))
def test_fast_path_never_disagrees_on_arbitrary_text(text: str) -> None:
    fast = authparams._parse_fast(text)
    if fast is None:
        return
    try:
        careful = _careful(text)
    except AuthParseError:
        raise AssertionError(
            f"fast path accepted what the careful parser rejects: {text!r}") from None
    assert fast == careful


def test_typical_credentials_take_the_fast_path() -> None:
    value = ('Digest username="1001",realm="acd.local",cnonce="6b8b4567",nc=00000001,qop=auth,'
             'uri="sip:127.0.0.1:5060",nonce="abc",response="0123",algorithm=MD5')
    assert authparams._parse_fast(value) == _careful(value)
