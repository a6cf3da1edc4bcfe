"""Task priorities: the four words a job file uses, their ranks, and what a broker is told.

A task's ``priority`` (``low | normal | high | critical``, default ``normal``) is stored as
its rank (0-3) twice: ``tasks.priority`` as declared, ``tasks.rank`` as it stands now.
The rank is what orders ready tasks, in the database (the feeders take the highest rank
first, then the oldest ``ready_at``) and on the broker (each message carries it).

No starvation: a ready task that has waited ``BATCHJOBS_PRIORITY_AGING`` seconds rises
one rank, after twice that another, up to ``critical`` (:func:`aging_cutoffs`, applied by
:func:`batchjobs.coordinator.sweeps.age_ready`): however many higher tasks keep
coming, a low one waits at most three agings plus one critical backlog.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


#: Ranks in order: a task of a higher rank starts first.
BY_RANK: tuple[Priority, ...] = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)
RANKS: dict[str, int] = {p.value: n for n, p in enumerate(BY_RANK)}
DEFAULT = Priority.NORMAL
HIGHEST = len(BY_RANK) - 1


def rank(priority: Priority | str) -> int:
    """The rank of a priority word (0 = low … 3 = critical)."""
    return RANKS[Priority(priority)]


def word(rank_: int) -> str:
    """The word of a rank (a stored rank out of range is shown as the nearest word)."""
    return BY_RANK[max(0, min(HIGHEST, rank_))].value


def message_priority(rank_: int, broker_url: str) -> int:
    """The priority property of a message of this rank, in the broker's own sense.

    kombu's Redis transport keeps one list per priority step (0, 3, 6, 9) and reads the
    lowest number first, so critical is 0 and low is 9 (a message published before
    priorities existed carries none, read as 0: it keeps going first). RabbitMQ (queues
    declared with ``x-max-priority`` :data:`HIGHEST`) and the embedded broker deliver the
    highest number first: the rank itself."""
    scheme = broker_url.partition("://")[0].split("+", 1)[0]
    if scheme in ("redis", "rediss", "sentinel"):
        return 3 * (HIGHEST - rank_)
    return rank_


def aging_cutoffs(now: datetime, aging: float) -> dict[str, datetime]:
    """``p_aged<k>``: a ready task that has risen ``k - 1`` ranks so far rises again once
    it has been ready since before this instant (``k`` agings ago)."""
    return {f"p_aged{k}": now - timedelta(seconds=aging * k) for k in range(1, HIGHEST + 1)}
