"""Source safety rules, sans-IO: which URLs and addresses a media job may fetch from.

Only ``http`` and ``https`` sources are accepted. An address is *refused* unless it is
globally routable (not loopback, private, link-local, multicast, reserved, unspecified,
shared/CGNAT...) or inside one of the networks the operator opened with
``--media-allow-network``. The rule is applied to every connection ffmpeg makes, by the
checking proxy of :mod:`wirelab.media._proxy`; this module only decides.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from ._errors import InvalidRequest, SourceRefused

__all__ = [
    "IPNetwork",
    "NetworkPolicy",
    "expand_template",
    "parse_networks",
    "validate_source_url",
    "validate_video_id",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

URL_MAX = 4096
VIDEO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse ``"CIDR[,CIDR...]"`` (blanks allowed; ``""``: none). ``ValueError`` names
    the first bad entry."""
    networks: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not a network in CIDR notation: {item!r}") from None
    return tuple(networks)


def _category(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address (``None``: it is)."""
    for name in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Which addresses media jobs may connect to: public ones, plus ``allow``."""

    allow: tuple[IPNetwork, ...] = ()

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP literal) is refused, or ``None`` when it is allowed."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if any(ip in net for net in self.allow if net.version == ip.version):
            return None
        category = _category(ip)
        if category is None:
            return None
        return f"{ip} is a {category} address (open it with --media-allow-network)"


def validate_source_url(url: str) -> SplitResult:
    """The parsed ``url`` if it is an absolute ``http(s)`` URL with a host; else
    :class:`InvalidRequest` (bad syntax) or :class:`SourceRefused` (another scheme)."""
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        raise InvalidRequest("source must be a URL of at most 4096 characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidRequest("source must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"source is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SourceRefused(f"only http and https sources are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidRequest("source URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("source URL must not carry credentials")
    if port == 0:
        raise InvalidRequest("source URL has port 0")
    return parts


def validate_video_id(video_id: str) -> str:
    """``video_id`` if it is 1-128 of ``A-Z a-z 0-9 _ . -`` not starting with a
    punctuation character (so it cannot be ``..``); else :class:`InvalidRequest`."""
    if not isinstance(video_id, str) or VIDEO_ID_RE.fullmatch(video_id) is None:
        raise InvalidRequest(
            "video_id must be 1-128 characters of A-Z a-z 0-9 _ . - starting with a letter or digit"
        )
    return video_id


def expand_template(template: str | None, video_id: str) -> str:
    """The source URL of ``video_id`` through ``template`` (``{video_id}`` is replaced by
    the validated, percent-encoded id). :class:`InvalidRequest` without a template."""
    if not template:
        raise InvalidRequest("this server has no --media-source-template: give a source URL")
    return template.replace("{video_id}", quote(validate_video_id(video_id), safe=""))
