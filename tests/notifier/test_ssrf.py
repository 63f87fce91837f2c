"""The webhook address policy (libs.ssrf) on its own: what is refused, in every spelling, and the allow-list."""

from __future__ import annotations

import re

import pytest

from libs import ssrf

STRICT = ssrf.policy_for("", False)

REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.8.9.10:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.0.0.1/hook", "private"),
    ("http://10.255.255.254/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://172.31.255.255/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://2130706433/hook", "loopback"),  # decimal 127.0.0.1
    ("http://0x7f000001/hook", "loopback"),  # hex
    ("http://0x7f.0.0.1/hook", "loopback"),
    ("http://0177.0.0.1/hook", "loopback"),  # octal
    ("http://127.1/hook", "loopback"),  # short form
    ("http://3232235521/hook", "private"),  # 192.168.0.1
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:7f00:1]/hook", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://[fc00::5]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
    ("http://100.100.100.200/", "cloud metadata"),  # Alibaba
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ("http://localhost:3000/webhook", "loopback"),  # a hostname resolving to loopback
    ("http://user:pw@127.0.0.1/hook", "loopback"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("url,why", REFUSED)
async def test_refused(url, why):
    with pytest.raises(ssrf.UnsafeUrl, match=why):
        await ssrf.check_url(url, STRICT)


@pytest.mark.asyncio
async def test_public_addresses_pass():
    assert [str(a) for a in await ssrf.check_url("https://8.8.8.8/x", STRICT)] == ["8.8.8.8"]
    assert await ssrf.check_url("http://[2606:4700:4700::1111]:8443/x", STRICT)
    assert await ssrf.check_url("http://[::ffff:8.8.8.8]/x", STRICT)


@pytest.mark.asyncio
async def test_a_name_is_refused_when_any_of_its_addresses_is():
    async def resolver(host, port):
        return {"mixed.example": ["8.8.8.8", "10.1.2.3"], "public.example": ["8.8.4.4"]}[host]

    with pytest.raises(ssrf.UnsafeUrl, match=re.escape("mixed.example resolves to 10.1.2.3, a private address")):
        await ssrf.check_url("http://mixed.example/", STRICT, resolver)
    assert [str(a) for a in await ssrf.check_url("http://public.example/", STRICT, resolver)] == ["8.8.4.4"]


@pytest.mark.asyncio
async def test_unresolvable_and_non_http():
    with pytest.raises(ssrf.UnresolvableHost):
        await ssrf.check_url("http://no-such-host.invalid/", STRICT)
    for url in ("ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8/", "http:///x"):
        with pytest.raises(ssrf.UnsafeUrl):
            await ssrf.check_url(url, STRICT)


@pytest.mark.asyncio
async def test_allow_list_opens_chosen_ranges_only():
    policy = ssrf.policy_for("10.1.0.0/16, 127.0.0.1", False)
    assert await ssrf.check_url("http://10.1.2.3/", policy)
    assert await ssrf.check_url("http://127.0.0.1:9000/", policy)
    assert await ssrf.check_url("http://[::ffff:10.1.2.3]/", policy)  # the mapped form of an allowed address
    for url in ("http://10.2.0.1/", "http://127.0.0.2/", "http://169.254.169.254/", "http://[::1]/"):
        with pytest.raises(ssrf.UnsafeUrl):
            await ssrf.check_url(url, policy)
    with pytest.raises(ValueError, match="HINDSIGHT_WEBHOOK_ALLOW"):
        ssrf.parse_allow_list("10.0.0.0/33")


@pytest.mark.asyncio
async def test_standalone_allows_loopback_and_nothing_else():
    policy = ssrf.policy_for("", True)
    assert policy.allows_loopback and not STRICT.allows_loopback
    assert await ssrf.check_url("http://127.0.0.1:3000/hook", policy)
    assert await ssrf.check_url("http://localhost:3000/hook", policy)
    assert await ssrf.check_url("http://[::1]:3000/hook", policy)
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://0.0.0.0/", "http://192.168.1.1/"):
        with pytest.raises(ssrf.UnsafeUrl):
            await ssrf.check_url(url, policy)


@pytest.mark.asyncio
async def test_refusal_messages_read_as_english():
    """The 400's message is shown to users: "an unspecified address", not "a unspecified address"."""

    async def resolver(host, port):
        return ["0.0.0.0"]

    with pytest.raises(ssrf.UnsafeUrl, match=r"0\.0\.0\.0 is an unspecified address$"):
        await ssrf.check_url("http://0.0.0.0/", STRICT)
    with pytest.raises(ssrf.UnsafeUrl, match=r"zero\.example resolves to 0\.0\.0\.0, an unspecified address$"):
        await ssrf.check_url("http://zero.example/", STRICT, resolver)
    # Issue 16: a refusal the operator can lift says how.
    with pytest.raises(ssrf.UnsafeUrl, match=r"10\.0\.0\.1 is a private address "
                       r"\(the server's operator can allow it: HINDSIGHT_WEBHOOK_ALLOW=10\.0\.0\.1/32\)$"):
        await ssrf.check_url("http://10.0.0.1/", STRICT)
    with pytest.raises(ssrf.UnsafeUrl, match=r"::1 is a loopback address \(.*HINDSIGHT_WEBHOOK_ALLOW=::1/128\)$"):
        await ssrf.check_url("http://[::1]/", STRICT)
