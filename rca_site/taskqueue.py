"""What the django-q2 queue holds now, read from the database every process shares.

Rootline's broker is django-q2's ORM broker: a task is an OrmQ row whose `lock` is the
time it may be taken from. Enqueueing sets it to now; a worker that takes the task moves
it to now + `retry`, and deletes the row when it is done (failures are acknowledged too).
So a row locked until the past is waiting for a worker, one locked until the future is
being worked on, and a waiting row's lock says since when it has waited.

django-q2's own cluster statistics live in the Django cache, which is per process with
Rootline's settings, so they cannot say whether a worker on another machine is alive.
The scheduler can: every running `qcluster` runs it about every 30 seconds, and it moves
the every-minute sweep's `next_run` on. A `next_run` long past means no worker is running.
"""

from dataclasses import dataclass

from django.db.models import Count, Min, Q
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from investigations import tasks

# Scheduled every minute by migration investigations 0003.
SWEEP_TASK = f"{tasks.__name__}.{tasks.sweep_stale_investigations.__name__}"


@dataclass(frozen=True)
class QueueState:
    waiting: int  # tasks no worker has taken
    claimed: int  # tasks a worker is running (or died running, until `retry` passes)
    oldest_wait_seconds: float  # how long the oldest waiting task has waited; 0 if none
    scheduler_lag_seconds: float | None  # how far the sweep is overdue; None: not scheduled


def queue_state(now=None):
    """The queue now, in two small queries (OrmQ holds only unfinished tasks)."""
    now = now or timezone.now()
    waiting = Q(lock__lte=now)
    rows = OrmQ.objects.aggregate(
        waiting=Count("pk", filter=waiting),
        claimed=Count("pk", filter=Q(lock__gt=now)),
        oldest=Min("lock", filter=waiting),
    )
    next_run = (
        Schedule.objects.filter(func=SWEEP_TASK)
        .order_by("next_run")
        .values_list("next_run", flat=True)
    ).first()
    return QueueState(
        waiting=rows["waiting"],
        claimed=rows["claimed"],
        oldest_wait_seconds=seconds_since(rows["oldest"], now),
        scheduler_lag_seconds=None if next_run is None else seconds_since(next_run, now),
    )


def seconds_since(moment, now):
    """Seconds from `moment` to `now`, never negative; 0 when there is no moment."""
    if moment is None:
        return 0.0
    return max((now - moment).total_seconds(), 0.0)
