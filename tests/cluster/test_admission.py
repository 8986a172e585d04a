"""HandshakeGate (real_cluster/admission.py) without sockets: a cap per source, a total cap that evicts the
oldest handshake of the busiest source (never another source's while the busiest has more), refusals and
evictions counted per source, and `done` releasing a slot."""

from __future__ import annotations

import pytest

from real_cluster.admission import HandshakeGate


def test_a_source_at_its_cap_is_refused_and_others_are_not():
    gate = HandshakeGate(per_source=3, total=10)
    assert [gate.admit(("f", i), "flood")[0] for i in range(5)] == [True, True, True, False, False]
    assert gate.admit("c", "client") == (True, None)
    assert gate.held("flood") == 3 and len(gate) == 4
    gate.done(("f", 0))
    assert gate.admit(("f", 9), "flood") == (True, None)
    refused, evicted = gate.take_counts()
    assert refused == {"flood": 2} and not evicted
    assert gate.take_counts() == ({}, {})


def test_the_total_cap_evicts_the_oldest_of_the_busiest_source():
    gate = HandshakeGate(per_source=4, total=6)
    for i in range(4):
        gate.admit(("a", i), "a")
    gate.admit(("b", 0), "b")
    gate.admit(("c", 0), "c")
    assert gate.admit(("d", 0), "d") == (True, ("a", 0))      # full: the busiest source pays, oldest first
    assert gate.held("a") == 3 and gate.held("d") == 1
    assert gate.admit(("a", 9), "a") == (False, None)         # the busiest source itself is refused when full
    assert gate.admit(("e", 0), "e") == (True, ("a", 1))
    assert gate.admit(("b", 1), "b") == (False, None)         # a has 2, b 1: evicting would only swap them
    _, evicted = gate.take_counts()
    assert evicted == {"a": 2}
    assert len(gate) == 6


def test_done_is_idempotent_and_forgets_empty_sources():
    gate = HandshakeGate(per_source=2, total=2)
    gate.admit("x", "s")
    gate.done("x")
    gate.done("x")
    gate.done("never")
    assert len(gate) == 0 and gate.held("s") == 0


def test_bad_caps_are_refused():
    with pytest.raises(ValueError):
        HandshakeGate(per_source=0, total=4)
    with pytest.raises(ValueError):
        HandshakeGate(per_source=5, total=4)
