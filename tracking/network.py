"""The client's network address, truncated before anything stores it.

IPv4 keeps its /24, IPv6 its /48 (the host part is zeroed). ``X-Forwarded-For`` is honoured only when
``TRACKING["TRUST_X_FORWARDED_FOR"]`` says a proxy of ours sets it; then its right-most entry (the one
our proxy appended) is the client.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from tracking.conf import tracking_settings


def ip_truncate(address: str) -> str:
    """``203.0.113.77`` -> ``203.0.113.0``; ``2001:db8:1:2::5`` -> ``2001:db8:1::``; junk -> ``""``."""
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def client_ip_truncated(request: HttpRequest) -> str:
    """The request's client address, truncated; ``""`` when unknown."""
    address = request.META.get("REMOTE_ADDR", "") or ""
    if tracking_settings().TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            address = forwarded.split(",")[-1]
    return ip_truncate(address)
