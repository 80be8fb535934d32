"""gRPC targets that name several Triton replicas, and resolving them to addresses.

A headless Service's `dns:///name:port` resolves to every ready Triton pod; an explicit
`ipv4:a:port,b:port` (or ipv6:) list names them directly. Plain `host:port` is one replica.
"""

from __future__ import annotations

import asyncio
import socket

from gateway.errors import UpstreamUnavailable

_LIST_SCHEMES = ("ipv4:", "ipv6:")


def split_target(url: str) -> tuple[str, str] | None:
    """("dns", "host:port") or ("list", "a:p,b:p") for multi-address gRPC targets, else None.

    Plain `host:port` targets are dialled as one address by gRPC (pick_first), so they are
    one replica as far as the gateway can tell: no fan-out for them.
    """
    if url.startswith("dns:"):
        rest = url[len("dns:") :]
        if rest.startswith("//"):
            # dns://[authority]/host:port: the authority names a DNS server; we use the system's.
            rest = rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
        return ("dns", rest) if rest else None
    for scheme in _LIST_SCHEMES:
        if url.startswith(scheme):
            return "list", url[len(scheme) :]
    return None


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port in the Triton URL, got {address!r}")
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_replicas(url: str) -> list[str]:
    """Every address (`ip:port`) a multi-address target names, sorted; [url] otherwise."""
    split = split_target(url)
    if split is None:
        return [url]
    kind, rest = split
    if kind == "list":
        return sorted({_join(*_host_port(a.strip())) for a in rest.split(",") if a.strip()})
    host, port = _host_port(rest)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UpstreamUnavailable(
            f"cannot resolve the Triton replicas of {url}: {exc}", retry_after_s=5
        ) from exc
    return sorted({_join(str(info[4][0]), port) for info in infos})


def list_target(addresses: list[str]) -> str | None:
    """An `ipv4:`/`ipv6:` gRPC target for resolved `ip:port` addresses; None when they mix
    families (gRPC's list schemes take one family) or there are none."""
    if not addresses:
        return None
    if all(a.startswith("[") for a in addresses):
        return "ipv6:" + ",".join(addresses)
    if not any(a.startswith("[") for a in addresses):
        return "ipv4:" + ",".join(addresses)
    return None
