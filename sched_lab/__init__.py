"""sched-lab: one pure scheduling core, driven by a live cluster and by a SimPy simulator."""

__version__ = "0.1.0"
