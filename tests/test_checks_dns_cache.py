"""The checks' DNS cache remembers a failed lookup without keeping the stack frames of every
caller alive: a cached failure is raised afresh each time, so its traceback does not grow and
what earlier callers held can be collected (a server with retention off grew by ~13 MB per
1,000 messages while a DNS server was failing)."""

from __future__ import annotations

import gc
import socket
import traceback
import weakref

import pytest

from mailpit_py.net.dns import DnsError, Resolver


class Marker:
    """A per-call object: it lives in the caller's frame only."""


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failing_resolver() -> Resolver:
    # A UDP port nobody listens on: the kernel answers "port unreachable" at once, a real
    # resolver failure without the network.
    return Resolver(nameserver=("127.0.0.1", closed_udp_port()), timeout=0.5)


def one_call(resolver: Resolver) -> tuple[weakref.ref[Marker], DnsError]:
    marker = Marker()
    ref = weakref.ref(marker)
    try:
        resolver.query("fails.example.test", "TXT")
    except DnsError as exc:
        return ref, exc
    raise AssertionError("the lookup did not fail")


def test_a_failing_name_server_is_a_temporary_error() -> None:
    resolver = failing_resolver()
    with pytest.raises(DnsError) as err:
        resolver.query("fails.example.test", "TXT")
    assert err.value.kind == "temperror"
    assert resolver.lookups == 1


def test_a_cached_failure_keeps_no_callers_alive_and_its_traceback_does_not_grow() -> None:
    resolver = failing_resolver()
    first_ref, first = one_call(resolver)
    assert resolver.lookups == 1
    second_ref, second = one_call(resolver)
    depth = len(list(traceback.walk_tb(second.__traceback__)))
    refs = [first_ref, second_ref]
    last = second
    for _ in range(2000):
        ref, last = one_call(resolver)
        refs.append(ref)
    assert resolver.lookups == 1  # every later call was answered from the cache
    assert last.kind == "temperror" and str(last) == str(first)
    assert len(list(traceback.walk_tb(last.__traceback__))) == depth
    del first, second
    gc.collect()
    # Only the last call's exception (still held here) may keep its own caller's frame.
    assert sum(ref() is not None for ref in refs[:-1]) == 0
