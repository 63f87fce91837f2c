"""The engine's compiled kernels (Cython: ``make engine`` builds them in place)."""

import os

# The sweep kernel's OpenMP threads wait for each other twice per chunk of bars. libgomp's
# default is to spin there, which keeps a core busy that the scheduler could give to a
# preempted partner thread: on this shared 2-core machine (load ~2.4) S2 with 2 threads
# took 2.0 s in some runs against 1.1 s with 1; with sleeping waits, never over 1.13 s. A
# sleeping wait costs microseconds per chunk. libgomp reads this once, when it is loaded:
# so before any kernel is imported (a value set by the user wins).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
