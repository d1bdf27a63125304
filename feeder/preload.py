"""Imported once by the process pool's fork server, before it forks the workers.

The workers then share the libraries and the language model (numpy arrays, never written)
copy-on-write, instead of each importing and decompressing its own: the pool's memory and
its start-up time no longer grow with the number of workers.
"""

from . import publish, render, sync  # noqa: F401 - imported for their side effect of loading
from .normalizer import _identifier

_identifier(())  # the model for the default settings (no ``languages`` limit)
