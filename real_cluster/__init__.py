"""The live sched-lab cluster: controller, engines and an IPython-parallel-style client over asyncio sockets."""
