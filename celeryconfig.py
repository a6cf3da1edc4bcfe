"""Celery settings of batchjobs, read from the environment.

``BATCHJOBS_BROKER_URL`` picks the broker (unset: the embedded filesystem
broker in ``./batchjobs.broker/``). The options that make batch servers behave
as AX threads are fixed here: late acknowledgement and a prefetch of one, so
each thread holds exactly the task it runs and nothing waits behind it.
"""

from batchjobs.settings import get_settings

_settings = get_settings()
_broker = _settings.broker_config()
broker_url = _broker["broker_url"]
broker_transport_options = _broker["broker_transport_options"]
broker_connection_retry_on_startup = True

# Modules with @batchable processes, imported by every batch server at start.
imports = _settings.imports

# Security: JSON only, everywhere.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# One thread, one task: no prefetching beyond the task in hand, ack after it ran.
task_acks_late = True
worker_prefetch_multiplier = 1
task_ignore_result = True
task_default_queue = "batch.default"

# Flower and `celery events` see every batch task and the server that ran it.
worker_send_task_events = True
task_send_sent_event = True

timezone = "UTC"
enable_utc = True
