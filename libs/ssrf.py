"""Where a webhook may be sent: the address policy against SSRF.

Shared by the gateway (a `webhook_url` is checked when a job is submitted or
a tenant default is saved) and the notifier (checked again at delivery time,
on the address the connection is actually made to, so a name that resolves
to a public address at submission and to 127.0.0.1 later gains nothing).

Only public unicast addresses are allowed: loopback, private, link-local,
multicast, unspecified, cloud-metadata and every other non-global range
(CGNAT, documentation, benchmarking, reserved) are refused, including when
they hide inside an IPv6 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64,
6to4, Teredo). IPv4 literals are read the way the C resolver reads them, so
`2130706433`, `0x7f000001`, `0177.0.0.1` and `127.1` are all 127.0.0.1.

An allow-list of CIDRs (`HINDSIGHT_WEBHOOK_ALLOW`) opens chosen ranges for
local receivers; standalone mode bound to loopback without
HINDSIGHT_REQUIRE_AUTH adds loopback to it (and only that case).

Hosts are IDNA-normalised (UTS #46) before anything else: `①②⑦.0.0.1` is
127.0.0.1 and `bücher.de` is `xn--bcher-kva.de`; a host that does not
normalise is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit, urlunsplit

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance-metadata endpoints of the clouds (AWS/GCP/Azure/OpenStack, ECS tasks,
# AWS over IPv6, Alibaba, Oracle). Most are link-local anyway; named so the
# refusal says what they are.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTNAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# What the C resolver accepts as an IPv4 literal: 1 to 4 parts, decimal, octal or hex.
_INET_ATON = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?$")

# (host, port) -> the addresses it resolves to, as strings.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeUrl(ValueError):
    """The URL may not be used for a webhook; the message says why (fit for the user)."""


class UnresolvableHost(OSError):
    """The URL's host does not resolve (now); nothing is known about where it points."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo, compatible), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated); :: and ::1 are themselves
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why `ip` is no place for a webhook, or None for a public unicast address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        why = refusal(inner)
        return f"{why} ({inner} inside an IPv6 address)" if why else None
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "non-public address"
    return None


# Refusals an operator may lift with HINDSIGHT_WEBHOOK_ALLOW for a receiver on its own network.
_ALLOWABLE = frozenset({"loopback address", "private address", "link-local address", "non-public address"})


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally (any IPv4 spelling the resolver accepts, or IPv6), else None."""
    text = host.strip().strip("[]")
    if "%" in text:  # an IPv6 zone id: the address is what matters
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _INET_ATON.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return None


def parse_allow_list(text: str) -> tuple[IPNetwork, ...]:
    """`"10.0.0.0/8, ::1/128, 192.168.1.5"` -> networks; ValueError names a bad entry."""
    out = []
    for item in filter(None, (p.strip() for p in re.split(r"[,\s]+", text or ""))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"HINDSIGHT_WEBHOOK_ALLOW entry {item!r} is not a CIDR or an address") from None
    return tuple(out)


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses, plus the allow-listed networks."""

    allow: tuple[IPNetwork, ...] = ()

    @property
    def allows_loopback(self) -> bool:
        return any(ipaddress.ip_address("127.0.0.1") in n for n in self.allow if n.version == 4)

    def allowed(self, ip: IPAddress) -> bool:
        return self.refusal(ip) is None

    def refusal(self, ip: IPAddress) -> str | None:
        """Why this policy refuses `ip`, or None."""
        candidates = [ip]
        inner = embedded_ipv4(ip)
        if inner is not None:
            candidates.append(inner)
        for net in self.allow:
            if any(c.version == net.version and c in net for c in candidates):
                return None
        return refusal(ip)

    def check_ip(self, ip: IPAddress | str, host: str = "") -> None:
        """Raise UnsafeUrl unless `ip` is allowed."""
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        why = self.refusal(addr)
        if why is not None:
            article = "an" if why[0] in "aeiou" else "a"
            # Private, loopback, link-local...: a receiver on the operator's own network is
            # plausible, and the operator can allow it.
            hint = (f" (the server's operator can allow it: HINDSIGHT_WEBHOOK_ALLOW={addr}/{addr.max_prefixlen})"
                    if why in _ALLOWABLE else "")
            if host and literal_ip(host) is None:
                raise UnsafeUrl(f"webhook address refused: {host} resolves to {addr}, {article} {why}{hint}")
            raise UnsafeUrl(f"webhook address refused: {addr} is {article} {why}{hint}")


@lru_cache(maxsize=32)
def policy_for(allow: str, loopback: bool) -> AddressPolicy:
    """The policy of a process: HINDSIGHT_WEBHOOK_ALLOW, plus loopback when `loopback`
    (standalone bound to loopback without HINDSIGHT_REQUIRE_AUTH: `Settings.dev_access()`)."""
    networks = parse_allow_list(allow)
    if loopback:
        networks = LOOPBACK_NETWORKS + networks
    return AddressPolicy(networks)


def normalize_host(host: str) -> str:
    """The ASCII form of a URL's host: IDNA (UTS #46) for a non-ASCII name, so
    `①②⑦.0.0.1` is `127.0.0.1` and `Bücher.de` is `xn--bcher-kva.de`; an ASCII host is
    returned as it is. UnsafeUrl when the host has no valid ASCII form."""
    if host.isascii():
        if not host or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in host):
            raise UnsafeUrl("webhook URL has no valid host")
        return host
    if ":" in host:  # an IPv6 literal has no Unicode spelling
        raise UnsafeUrl("webhook URL host is not a valid IPv6 address")
    trailing = host.endswith((".", "\u3002", "\uff0e", "\uff61"))
    try:
        ascii_host = idna.encode(host.rstrip(".\u3002\uff0e\uff61"), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise UnsafeUrl(f"webhook URL host is not a valid internationalised domain name ({exc})") from None
    if not ascii_host:
        raise UnsafeUrl("webhook URL has no valid host")
    return ascii_host + ("." if trailing else "")


def _ascii_part(text: str) -> str:
    """Percent-encode (UTF-8) every non-ASCII character of a path or query."""
    if text.isascii():
        return text
    return "".join(c if c.isascii() else quote(c, safe="") for c in text)


def normalize_url(url: str) -> str:
    """An http(s) URL in the ASCII form an HTTP client sends: the host IDNA-normalised,
    non-ASCII characters of the rest percent-encoded, no fragment. An all-ASCII URL is
    returned unchanged. UnsafeUrl for anything that is not a usable http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except (ValueError, TypeError):
        raise UnsafeUrl("webhook URL is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeUrl("webhook URL must use http or https")
    ascii_host = normalize_host(host)
    if url.isascii():
        return url
    netloc = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None:
        userinfo = quote(parts.username, safe="!$&'()*+,;=-._~%")
        if parts.password is not None:
            userinfo += ":" + quote(parts.password, safe="!$&'()*+,;=-._~%")
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((parts.scheme.lower(), netloc, _ascii_part(parts.path), _ascii_part(parts.query), ""))


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, the host in its ASCII (IDNA) form; UnsafeUrl for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, TypeError):
        raise UnsafeUrl("webhook URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("webhook URL must use http or https")
    host = parts.hostname or ""
    if not host:
        raise UnsafeUrl("webhook URL has no host")
    return scheme, normalize_host(host), port or (443 if scheme == "https" else 80)


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (getaddrinfo, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_checked(host: str, port: int, policy: AddressPolicy, resolver: Resolver | None = None) -> list[IPAddress]:
    """The host's addresses, each allowed by `policy`.

    Raises UnsafeUrl if any address is refused (a name that points anywhere
    forbidden is refused as a whole), UnresolvableHost if it does not resolve.
    """
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTNAMES:
        raise UnsafeUrl(f"webhook address refused: {host} is a cloud metadata host")
    literal = literal_ip(host)
    if literal is not None:
        policy.check_ip(literal)
        return [literal]
    try:
        found = await (resolver or system_resolve)(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"cannot resolve {host}: {exc}") from None
    if not found:
        raise UnresolvableHost(f"cannot resolve {host}: no address")
    addrs = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    for addr in addrs:
        policy.check_ip(addr, host)
    return addrs


async def check_url(url: str, policy: AddressPolicy, resolver: Resolver | None = None) -> list[IPAddress]:
    """Check a webhook URL: http(s), and every address its host resolves to allowed.

    Returns the addresses; raises UnsafeUrl or UnresolvableHost.
    """
    _, host, port = split_url(url)
    return await resolve_checked(host, port, policy, resolver)


def describe(networks: Iterable[IPNetwork]) -> str:
    return ", ".join(str(n) for n in networks) or "none"
