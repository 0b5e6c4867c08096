"""Garbage-collector settings for a long-running server process.

Everything allocated while starting (modules, the catalog, schemas, the OpenAPI
document) lives as long as the process, yet CPython's full (generation 2) collections walk
all of it again and again. Under the benchmark's load one such collection took up to
48 ms (measured with gc.callbacks), a pause every request in flight waits through.
`gc.freeze()` moves the start-up heap out of the collector's sight, so a full collection
walks only what was allocated since. Frozen objects are still freed by reference counting;
only a cycle among them would stay for good. The one frozen object that is dropped later
is the first catalog snapshot, when a reload replaces it: at worst one catalog's worth.

The youngest generation is collected after 10,000 net allocations instead of 700. The
count rises with the objects the requests in flight hold at once and falls as reference
counting frees them, so at 700 bursts crossed it about 50 times a second under the
benchmark's load (406 collections, 352 ms, in a run), each walking objects about to be
freed anyway; at 20,000 not one collection ran in a whole run. What the collector is there
for, cyclic garbage, waits at most that many allocations.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Collects start-up garbage, then freezes what is left; call once the app is set up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
