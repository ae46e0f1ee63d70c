"""Celery tasks: classify one picture or a batch, on the fetch and classify queues."""
