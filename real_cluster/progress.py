"""Progress bars for `wait_interactive` and `wait_for_engines(interactive=True)`: tqdm, the notebook widget
inside a Jupyter kernel (when ipywidgets is installed), the text bar on stderr everywhere else."""

from __future__ import annotations

import sys
from typing import Any


def in_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(total: int, *, desc: str | None = None, unit: str = "tasks", widget: bool | None = None) -> Any:
    """A tqdm bar of `total` steps; `widget` None picks the notebook widget inside a kernel, else the text bar."""
    if widget is None:
        widget = in_kernel()
    if widget:
        try:
            import ipywidgets  # noqa: F401 - tqdm.notebook needs it
            from tqdm.notebook import tqdm as bar
        except ImportError:                       # a kernel without ipywidgets: the text bar (on stderr)
            from tqdm import tqdm as bar
    else:
        from tqdm import tqdm as bar
    return bar(total=total, desc=desc, unit=unit)
