"""Imported once by the process pool's fork server, before it forks the workers.

First the fork server asks to die with the process that started it (``pool.py``). Then it
loads the libraries and the language model: the workers share them (numpy arrays, never
written) copy-on-write, instead of each importing and decompressing its own, so the pool's
memory and its start-up time no longer grow with the number of workers.
"""

from . import pool

pool.start_fork_server()

from . import publish, render, sync  # noqa: E402, F401 - imported for their side effect of loading
from .normalizer import _identifier  # noqa: E402

_identifier(())  # the model for the default settings (no ``languages`` limit)
