"""The loopback rule (config/hosts.py): which hosts are this machine, which hosts a URL names, and
the refusal of a URL off this machine without an opt-in. Pure functions: nothing connects."""

from __future__ import annotations

import re

import pytest

from config.hosts import LoopbackRequired, is_loopback_host, parse_hosts, require_loopback_or_opt_in


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("192.0.2.1", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("vm", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_only_literal_loopback_addresses_and_localhost_are_local(host: str, local: bool) -> None:
    assert is_loopback_host(host) is local


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("redis://192.0.2.1/0", [("192.0.2.1", 6379)]),
        ("rediss://user:pw@cache.example.com:6380/0", [("cache.example.com", 6380)]),
        ("redis:///0?host=192.0.2.1", [("192.0.2.1", 6379)]),  # redis-py takes ?host= when the URL has none
        ("redis://%31%39%32.0.2.1:6379/0", [("192.0.2.1", 6379)]),  # and unquotes the host
        ("redis://:pw@/0", [("localhost", 6379)]),
        ("redis://[::1]:6380", [("::1", 6380)]),
        ("sentinel://127.0.0.1:26379,192.0.2.1/mymaster", [("127.0.0.1", 26379), ("192.0.2.1", 26379)]),
        ("cluster://u:p@[::1]:7000,[::1],:7002", [("::1", 7000), ("::1", 6379), ("127.0.0.1", 7002)]),
        ("http://LOCALHOST:8080/reset", [("localhost", 8080)]),
        ("https://[::1]/", [("::1", 443)]),
    ],
)
def test_parse_hosts_as_the_client_reads_them(url: str, hosts: list[tuple[str, int]]) -> None:
    assert parse_hosts(url) == hosts


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("embedded", "no host to check in 'embedded'"),
        ("127.0.0.1:6379", "no host to check"),
        ("unix:///tmp/redis.sock", "no host to check"),
        ("http://:s3cret@/x", "no host in 'http://:***@/x'"),
        ("http://[::1/x", "Invalid IPv6 URL"),
        ("cluster://[::1:7000", "bad host '[::1:7000'"),
        ("sentinel://::1:26379/m", "an IPv6 address goes in brackets"),
        ("cluster://127.0.0.1:70000", "bad port '70000'"),
    ],
)
def test_parse_hosts_refuses_what_names_no_host(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_hosts(url)


def refusal(url: str, opt_in: str | None, what: str) -> str:
    with pytest.raises(LoopbackRequired) as refused:
        require_loopback_or_opt_in(url, opt_in, what)
    assert isinstance(refused.value, ValueError)  # pydantic validators report it as bad input
    return str(refused.value)


def test_off_loopback_is_refused_naming_what_the_hosts_and_the_opt_in() -> None:
    for url in (
        "redis://127.0.0.1:6379",
        "rediss://[::1]:6380",
        "http://localhost:80",
        "cluster://127.0.0.2:1,[::1]:2",
    ):
        require_loopback_or_opt_in(url, "Opt in", "it")  # loopback: nothing to opt in to
    message = refusal("redis://192.0.2.1:6379", "Pass --allow-it", "chaos against it refused")
    assert message == "chaos against it refused: 192.0.2.1 is not a loopback address. Pass --allow-it"
    # one remote node of several is enough, each named once; with no opt-in at all the message ends there
    assert refusal("sentinel://127.0.0.1:1,a.example:2,[::1]:3,a.example:4/m", "Opt in", "it") == (
        "it: a.example is not a loopback address. Opt in"
    )
    assert (
        refusal("cluster://192.0.2.1:1,192.0.2.2:2", None, "api")
        == "api: 192.0.2.1, 192.0.2.2 are not loopback addresses"
    )
    message = refusal("http://[::1/x", "Opt in", "url")  # a URL whose hosts cannot be read is not loopback
    assert message.startswith("url: Invalid IPv6 URL") and message.endswith(". Opt in")
