"""Which Host headers and which proxies are ours: parsing DASHBOARD_ALLOWED_HOSTS and
DASHBOARD_TRUSTED_PROXIES, and the Host rule itself.

Pure standard library on purpose: the settings import it, and the Gunicorn master imports the
settings before gevent patches anything (Werkzeug would bring ``ssl`` in with it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ANY_HOST = "*"


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 172.16.0.0/12, ::1"`` as networks; raises ValueError naming a bad entry."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (such as 10.0.0.0/8)") from None
    return tuple(networks)


def parse_hosts(raw: str) -> tuple[str, ...]:
    """Host names, lower case, without a trailing dot; ``.example.com`` also allows subdomains."""
    hosts = []
    for item in (part.strip().lower().rstrip(".") for part in raw.split(",")):
        if not item:
            continue
        if item != ANY_HOST and (":" in item or "/" in item or " " in item or "*" in item):
            raise ValueError(f"{item!r} is not a host name (no port, scheme or wildcard other than '*')")
        hosts.append(item)
    return tuple(hosts)


@lru_cache(maxsize=1)
def machine_host_names() -> tuple[str, ...]:
    """This machine's names, the default DASHBOARD_ALLOWED_HOSTS beyond localhost."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):  # a broken resolver: the short name is still there
        names.add(socket.getfqdn())
    return tuple(sorted(n.lower().rstrip(".") for n in names if n))


def host_name(host_header: str) -> str:
    """``"Example.com.:8082"`` -> ``"example.com"``; ``"[::1]:8082"`` -> ``"::1"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostRule:
    """Which Host headers are ours. localhost and IP literals always are: no rebinding page can
    make a browser send them, since its own page would have to be served from that name."""

    def __init__(self, allowed: tuple[str, ...] | None):
        self.allowed = machine_host_names() if allowed is None else allowed
        self.any = ANY_HOST in self.allowed

    def allows(self, host_header: str | None) -> bool:
        if self.any or not host_header:
            # No Host at all (an HTTP/1.0 probe) is no rebinding: every browser sends one.
            return True
        name = host_name(host_header)
        if name == "localhost" or name.endswith(".localhost") or _is_ip_literal(name):
            return True
        return any(
            name == entry or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:]))
            for entry in self.allowed
        )
