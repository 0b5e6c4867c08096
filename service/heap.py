"""Garbage-collector settings for a long-running server process.

Everything allocated while starting (modules, the catalog, schemas, the OpenAPI
document) lives as long as the process, yet CPython's full (generation 2) collections walk
all of it again and again. Under the benchmark's load one such collection took up to
48 ms (measured with gc.callbacks), a pause every request in flight waits through.
`gc.freeze()` moves the start-up heap out of the collector's sight, so a full collection
walks only what was allocated since. Frozen objects are still freed by reference counting;
only a cycle among them would stay for good. The one frozen object that is dropped later
is the first catalog snapshot, when a reload replaces it: at worst one catalog's worth.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collects start-up garbage, then freezes what is left; call once the app is set up."""
    gc.collect()
    gc.freeze()
