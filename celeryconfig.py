"""Your Celery overrides for batchjobs (an example; not installed with the package).

The batchjobs app (``celery -A batchjobs.app``) imports a module called ``celeryconfig``
if one is on the Python path, or the module named by ``BATCHJOBS_CELERY_CONFIG``, and
applies its lower-case settings over batchjobs' defaults. The broker comes from
``BATCHJOBS_BROKER_URL``, and what batchjobs relies on is applied over this module
whatever it says (see ``batchjobs/app.py``: JSON only, late acknowledgement, a
prefetch of one per thread, reject on a lost worker process, task events).
"""

# Examples of settings that are yours to choose:
worker_hijack_root_logger = True
broker_pool_limit = 10
