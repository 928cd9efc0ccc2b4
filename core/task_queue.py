"""How services hand work to Celery: by task name, once the transaction commits.

After the commit, because a worker (or an eager run) must never act on a change that then
rolls back: a webhook for an anomaly that was never stored, a task reading a row it cannot
see yet. By name, because the task modules are adapters that import the services: a service
importing its task module back would be an import cycle, and a lower app may not import a
higher one at all (analytics hands over to insights this way). Every app's tasks are
registered in every process by its AppConfig.ready, so a name resolves to the task itself
wherever one is registered (eager mode runs it in place) and to the broker otherwise.
"""

import logging
from typing import Any

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)


def task_send_on_commit(name: str, /, **kwargs: Any) -> None:
    """Send the task called `name` with `kwargs` when the current transaction commits, or at
    once outside a transaction. A rolled-back transaction sends nothing."""
    transaction.on_commit(lambda: current_app.signature(name, kwargs=kwargs).apply_async())


def task_send_or_later(name: str, /, *, countdown: float | None = None, **kwargs: Any) -> None:
    """Send the task called `name` with `kwargs` now (after `countdown` seconds), for a task
    that a beat entry also sends when its work is left undone: a broker out of reach is
    logged, not raised (the schedule sends the task later)."""
    try:
        current_app.signature(name, kwargs=kwargs).apply_async(countdown=countdown)
    except BrokerUnreachable as exc:
        logger.warning("could not queue %s %s: the Celery broker is unreachable (%s)", name, kwargs, exc)


def task_send_on_commit_or_later(name: str, /, **kwargs: Any) -> None:
    """`task_send_or_later` once the current transaction commits (at once outside one): a
    broker out of reach would otherwise fail the request that has just committed the
    change (the change stands, and the schedule sends the task later)."""
    transaction.on_commit(lambda: task_send_or_later(name, **kwargs))
