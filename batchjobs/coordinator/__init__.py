"""The dependency coordinator: claims, outcomes, and what becomes ready next.

Each step is a guarded update (``… WHERE status = …``), so a duplicated message or a
second report of the same outcome changes nothing; tasks that became ready are
returned as :class:`~batchjobs.queues.Dispatch` lists that the caller publishes
*after* commit (a task is never on a queue before its ``ready`` row is visible)::

    coordinator/
    ├── claim.py       a ready task becomes executing, with its attempt row
    ├── outcome.py     record(): an attempt's end, a retry, the task's end (and a
    │                  chain's next claim, in the same step where it can)
    ├── settlement.py  dependents decided (cascading not_run), the job's counters and end
    ├── feed.py        a job's start, and ready tasks put on queues as they drain
    ├── delayed.py     retries that wait in the database until due (not_before)
    ├── spawn.py       tasks a process added at run time, stored with its success
    └── sweeps.py      the housekeepers' duties: due jobs, feeding, recovery

The SQL is prebuilt in :mod:`batchjobs.store.statements`; what differs between
databases is :mod:`batchjobs.store.steps`' business.
"""

from .claim import Claim, claim, claim_next, readied_by_success
from .feed import queue_job, queue_ready, start_job, unqueued_groups
from .outcome import NextTask, record
from .settlement import end_settled_job, propagate, settled_jobs

__all__ = ["Claim", "NextTask", "claim", "claim_next", "end_settled_job", "propagate",
           "queue_job", "queue_ready", "readied_by_success", "record", "settled_jobs",
           "start_job", "unqueued_groups"]
