"""Every queue the workers consume, for the operator's figures and the dead-letter tools."""

from workers import jobs, jobs_fulfilment, jobs_webhooks

ALL_QUEUES: tuple[str, ...] = tuple(dict.fromkeys(jobs.QUEUES + jobs_fulfilment.QUEUES + jobs_webhooks.QUEUES))
