"""Which domain a rule covers and which domains may be decided (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailroom.domains.names import PROVIDERS, covers, refusal, registrable, rule_for

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domain = st.lists(label, min_size=2, max_size=4).map(".".join)


@given(domain, domain)
def test_a_rule_covers_itself_and_subdomains_never_lookalikes(rule: str, other: str) -> None:
    assert covers(rule, rule)
    assert covers(rule, f"mail.{rule}")
    assert not covers(rule, f"not{rule}")  # notacme.example is not acme.example's
    assert covers(rule, other) == (other == rule or other.endswith("." + rule))


@given(domain, st.lists(label, max_size=3))
def test_the_most_specific_rule_wins(base: str, prefix: list[str]) -> None:
    host = ".".join([*prefix, base])
    rules = {base: "outer", host: "inner"}
    assert rule_for(f"someone@{host}", rules) == (host, "inner")
    assert rule_for(f"someone@x.{host}", {base: "outer"}) == (base, "outer")
    assert rule_for(f"someone@{host}", {f"other-{base}": 1}) is None


def test_public_suffixes_and_providers_are_refused() -> None:
    for suffix in ("com", "co.uk", "github.io", "example"):
        assert "public suffix" in str(refusal(suffix, force=True))
    for provider in PROVIDERS:
        assert "shared mail provider" in str(refusal(provider))
        assert "shared mail provider" in str(refusal(f"eu.{provider}"))
        assert refusal(provider, force=True) is None
    assert refusal("acme.co.uk") is None
    for bad in ("acme..example", "3.4", "-a.example", "\u202e.com", "[127.0.0.1]", ""):
        assert "not a domain name" in str(refusal(bad)), bad


def test_a_label_decides_for_the_registrable_domain() -> None:
    assert registrable("mail.news.acme.co.uk") == "acme.co.uk"
    assert registrable("acme.example") == "acme.example"
    assert registrable("co.uk") == "co.uk"  # itself: then refused as a public suffix
