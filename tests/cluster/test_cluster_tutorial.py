"""The seed tutorial (shared/seed/task_interface_tutorial.md) run live: its code with only the import
lines and the cluster start changed, checking each output it shows (True for map vs serial, the 32 values
of f.map, -9 for apply_sync(baz, 4, 5)); plus `@require` of a module no engine has failing with
ImpossibleDependency instead of hanging, and the retries/resubmit/scheduler sections."""

from __future__ import annotations

import pytest

from real_cluster import Cluster

pytestmark = pytest.mark.timeout(120)

F_MAP = [0.0, 10.0, 160.0, 810.0, 2560.0, 6250.0, 12960.0, 24010.0, 40960.0, 65610.0, 100000.0, 146410.0,
         207360.0, 285610.0, 384160.0, 506250.0, 655360.0, 835210.0, 1049760.0, 1303210.0, 1600000.0,
         1944810.0, 2342560.0, 2798410.0, 3317760.0, 3906250.0, 4569760.0, 5314410.0, 6146560.0, 7072810.0,
         8100000.0, 9235210.0]


def test_tutorial(lab_dir):
    # $ ipcluster start -n 4 --profile='ipython-task-interface'   becomes:
    with Cluster(n=4, profile="ipython-task-interface"):
        # In [1]:
        from real_cluster import Client
        # In [2]:
        rc = Client(profile='ipython-task-interface')
        # In [3]:
        # default load-balanced view
        lview = rc.load_balanced_view()

        # In [4]:
        lview.block = True
        serial_result = map(lambda x:x**10, range(32))
        parallel_result = lview.map(lambda x:x**10, range(32))
        out4 = list(serial_result)==parallel_result
        assert out4 is True

        # In [5]:
        @lview.parallel()
        def f(x):
            return 10.0*x**4

        # this is done in parallel
        out5 = f.map(range(32))
        assert out5 == F_MAP

        # In [6]:
        from real_cluster import depend, require, dependent

        # In [7]:
        @require('numpy', 'zmq')
        def myfunc():
            return dostuff()  # noqa: F821 - as in the tutorial

        # In [8]:
        def foo(a):
            return a*a

        @require(foo)
        def bar(b):
            return foo(b)

        @require(bar)
        def baz(c, d):
            return bar(c) - bar(d)

        # In [9]:
        out9 = lview.apply_sync(baz, 4, 5)
        assert out9 == -9

        # In [10]:
        def platform_specific(plat):
            import sys
            return sys.platform == plat

        @depend(platform_specific, 'darwin')
        def mactask():
            do_mac_stuff()  # noqa: F821

        @depend(platform_specific, 'nt')
        def wintask(win):
            do_windows_stuff()  # noqa: F821

        # Not shown in the tutorial's outputs: what those functions do here. These engines are
        # neither darwin nor nt, so the platform tasks fail at once. `myfunc` needs numpy and zmq:
        # where pyzmq is installed (the notebook extra brings it, through ipykernel) the requirement
        # is met and its body runs into the tutorial's undefined `dostuff`; elsewhere no engine
        # qualifies.
        import importlib.util

        from real_cluster.error import ImpossibleDependency, RemoteError
        for fn, args in ((mactask, ()), (wintask, (1,))):
            with pytest.raises(ImpossibleDependency):
                lview.apply_sync(fn, *args)
        if importlib.util.find_spec("zmq") is None:
            with pytest.raises(ImpossibleDependency):
                lview.apply_sync(myfunc)
        else:
            with pytest.raises(RemoteError) as raised:
                lview.apply_sync(myfunc)
            assert raised.value.ename == "NameError" and "dostuff" in str(raised.value)
        assert isinstance(dependent(foo, platform_specific, 'linux'), dependent)

        # Retries and resubmit, the scheduler in use:
        lview.retries = 2
        assert lview.apply_sync(foo, 3) == 9
        ar = rc.resubmit(rc.history[-1])
        assert ar.get(10) == 9
        assert rc.info.scheme == "leastload"
        rc.close()
