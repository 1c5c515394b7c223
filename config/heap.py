"""The garbage collector in a long-running process: what is alive once it is ready stays out of
its sight.

Python's collector walks every tracked object in a full (generation 2) collection. A worker or
API process holds a few hundred thousand of them from its imports alone (Celery, SQLAlchemy,
FastAPI, pydantic), so each full collection stopped the process for 50–300 ms on the benchmark
machine, at moments no request chooses. Both pool processes of the applying worker did so at the
same instant in one run, and nothing was applied for that long (docs/PERFORMANCE.md, "Latency").

`settle()` collects once, then moves every surviving object into the permanent generation
(`gc.freeze`): later collections walk only what was made after, the per-request and per-task
objects, and the long-lived ones are never touched again (which also keeps a forked pool
process's pages shared with its parent).
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then freeze the rest: call it once a process is ready."""
    gc.collect()
    gc.freeze()
