"""The engine namespace's rules, in process (real_cluster/namespace.py; the live behaviour is in
test_directview.py): push/pull/execute/clear, pull's NameError naming a worker restart only after one,
and `lend`: `__main__` functions bound to the namespace for one call, shipped values lent and taken back."""

from __future__ import annotations

import types

import pytest

from real_cluster import namespace as ns


@pytest.fixture(autouse=True)
def fresh_namespace():
    ns._clear()
    ns.set_generation(0)
    yield
    ns._clear()
    ns.set_generation(0)


def _main_function(source: str, name: str, shipped: dict) -> types.FunctionType:
    """A function as cloudpickle rebuilds a `__main__` one: its own globals dict holding the shipped values."""
    g = {"__name__": "__main__", **shipped}
    exec(source, g)
    f = g[name]
    f.__module__ = "__main__"
    return f


def test_push_pull_execute_clear():
    ns._push(a=1, b=[1, 2])
    assert ns._pull("a") == 1 and ns._pull(["a", "b"]) == [1, [1, 2]] and ns._pull("b[1] * 10") == 20
    ns._execute("c = a + 41\nimport colorsys")
    assert ns._pull("c") == 42 and ns._pull("colorsys.__name__") == "colorsys"
    ns._import("textwrap", ("dedent",))
    assert ns._pull("dedent.__module__") == "textwrap"
    ns._clear()
    with pytest.raises(NameError) as info:
        ns._pull("a")
    assert "restarted" not in str(info.value)


def test_a_missing_name_after_a_restart_says_so():
    ns.set_generation(2)
    with pytest.raises(NameError, match=r"name 'a' is not defined \(this engine's worker was restarted 2 times"):
        ns._pull(["a"])
    with pytest.raises(NameError, match="restarted 2 times"):
        ns._execute("a + 1")


def test_lend_binds_main_functions_for_one_call():
    ns._push(engine_value=10)
    f = _main_function("def f(v):\n    global written\n    written = v + engine_value + shipped + helper()\n"
                       "    return written\n"
                       "def helper():\n    return engine_value\n", "f", {"shipped": 100, "engine_value": -1})
    with ns.lend(f, (1,), {}) as (g, args, kwargs):
        assert g.__globals__ is ns.NAMESPACE and g(*args, **kwargs) == 1 + 10 + 100 + 10   # the engine's value wins
        assert ns.NAMESPACE["shipped"] == 100                  # lent while the call runs
    assert "shipped" not in ns.NAMESPACE and "helper" not in ns.NAMESPACE       # taken back
    assert ns._pull("written") == 121 and ns._pull("engine_value") == 10        # global assignments stay


def test_lend_binds_function_arguments_and_leaves_module_functions_alone():
    ns._push(k=3)
    square = _main_function("def square(v):\n    return v * k\n", "square", {})
    with ns.lend(map, (square, [1, 2]), {}) as (g, args, _):
        assert g is map and list(g(*args)) == [3, 6]
    with ns.lend(abs, (-1,), {}) as call:
        assert call == (abs, (-1,), {})                         # nothing to bind: the same call
    rebinding = _main_function("def r():\n    global lent\n    lent = 'mine'\n", "r", {"lent": "shipped"})
    with ns.lend(rebinding, (), {}) as (g, _, _):
        g()
    assert ns.NAMESPACE["lent"] == "mine"                       # rebound by the call: kept


def test_interactive_marks_functions_and_leaves_builtins_alone():
    from real_cluster import interactive

    def local(v):
        return v + 1

    g = interactive(local)
    assert g is not local and g.__module__ == "__main__" and g(1) == 2 and local.__module__ != "__main__"
    assert interactive(abs) is abs and abs.__module__ == "builtins"          # returned as is, never mutated


def test_a_rebound_function_is_reused_while_unchanged_and_made_afresh_when_it_changes():
    ns._push(k=2)
    f = _main_function("def f(v):\n    return v * k\n", "f", {})
    with ns.lend(f, (3,), {}) as (g1, args, _):
        assert g1(*args) == 6
    with ns.lend(f, (3,), {}) as (g2, _, _):
        assert g2 is g1                                         # the same copy: nothing changed
    f.__defaults__ = (5,)
    with ns.lend(f, (), {}) as (g3, args, _):
        assert g3 is not g1 and g3(*args) == 10                 # a new default: a new copy that has it
    f.flag = "x"
    with ns.lend(f, (), {}) as (g4, _, _):
        assert g4.flag == "x"                                   # attributes: copied afresh every call
    with ns.lend(f, (), {}) as (g5, _, _):
        assert g5 is not g4 and g5.flag == "x"
