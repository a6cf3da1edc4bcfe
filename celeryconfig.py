"""Celery settings of batchjobs, read from the environment.

``BATCHJOBS_BROKER_URL`` picks the broker (unset: the embedded filesystem
broker in ``./batchjobs.broker/``). The options that make batch servers behave
as AX threads are fixed here: late acknowledgement and a prefetch of one, so
each thread holds exactly the task it runs and nothing waits behind it.
"""

from batchjobs.settings import FILESYSTEM_POLLING_INTERVAL, get_settings

_settings = get_settings()

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True

if _settings.embedded_broker:
    _folder = _settings.broker_folder
    for _sub in ("queue", "control", "processed"):
        (_folder / _sub).mkdir(parents=True, exist_ok=True)
    broker_transport_options = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "control_folder": str(_folder / "control"),
        "processed_folder": str(_folder / "processed"),
        "store_processed": False,
        "polling_interval": FILESYSTEM_POLLING_INTERVAL,
    }
else:
    # A redelivered message is harmless (the claim refuses it), so the visibility
    # timeout only bounds how long a message of a dead worker waits.
    broker_transport_options = {"visibility_timeout": 3600}

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
