"""Ports for the servers a test, benchmark or load test starts are never handed out twice."""

from __future__ import annotations

import socket

import pytest

from gateway.ops.servers.ports import free_port, free_ports


def test_ports_handed_out_one_at_a_time_are_all_distinct() -> None:
    # The kernel hands a released port out again: 300 bind-and-close rounds repeat a few
    # (CI once started Triton with its gRPC and HTTP ports equal).
    handed = [free_port() for _ in range(300)]
    assert len(set(handed)) == len(handed)


def test_a_request_for_several_ports_gets_distinct_bindable_ones() -> None:
    chosen = free_ports(3)
    assert len(set(chosen)) == 3
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_no_ports_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        free_ports(0)
