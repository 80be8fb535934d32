"""Who may call the keyless compatibility routes: callers from the configured networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from fastapi import Request

from gateway.errors import ClientNotAllowed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.0/8, ::1/128' -> networks (Settings has already validated each entry)."""
    return tuple(
        ipaddress.ip_network(i.strip(), strict=False) for i in text.split(",") if i.strip()
    )


def client_allowed(host: str | None, networks: Sequence[Network]) -> bool:
    """Whether a peer address (as the ASGI server reports it) lies in one of the networks."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d
    return any(address in network for network in networks)


def require_compat_client(request: Request) -> None:
    """403 unless the direct peer is in FACEGATE_COMPAT_NETWORKS.

    The peer is the TCP peer (or what the server's proxy-headers handling made of it):
    behind a reverse proxy, list the proxy's address and restrict access at the proxy.
    """
    networks: tuple[Network, ...] = request.app.state.compat_networks
    host = request.client.host if request.client else None
    if not client_allowed(host, networks):
        raise ClientNotAllowed(
            f"client {host} is not in FACEGATE_COMPAT_NETWORKS: these keyless compatibility "
            "routes answer only the networks listed there"
        )
