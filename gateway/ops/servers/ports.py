"""Free local TCP ports for the servers this process starts (tests, benchmarks, load tests).

The kernel picks a free port for a socket bound to port 0; once that socket closes, the next
bind may be handed the same port again. Two calls in a row for one server's gRPC and HTTP
ports then name one port twice and the server refuses to start ("cannot listen to HTTP
requests and GRPC requests at the same address and port"). So a request for several ports
holds every socket open until all are chosen, and this process remembers the ports it handed
out lately and never hands them out again while they are remembered.
"""

from __future__ import annotations

import socket
import threading
from collections import deque

# Ports handed out lately; a server given one may not have bound it yet.
_RECENT: deque[int] = deque(maxlen=512)
_LOCK = threading.Lock()
_MAX_TRIES = 64


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` now, none handed out lately by this process."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    with _LOCK:
        held: list[socket.socket] = []
        chosen: list[int] = []
        try:
            for _ in range(count * _MAX_TRIES):
                sock = socket.socket()
                held.append(sock)
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
                if port in _RECENT or port in chosen:
                    continue
                chosen.append(port)
                if len(chosen) == count:
                    break
        finally:
            for sock in held:
                sock.close()
        if len(chosen) < count:
            raise OSError(f"could not find {count} free ports on {host}")
        _RECENT.extend(chosen)
        return chosen


def free_port(host: str = "127.0.0.1") -> int:
    """One port free on `host` now, not handed out lately by this process."""
    return free_ports(1, host)[0]
