"""Core tables: the task outbox (work requested by a committed transaction, until the broker accepts it)."""

from django.db import models


class TaskOutbox(models.Model):
    """One task message to send. Written in the transaction that requests the work, deleted once the broker
    has accepted the message; a row still here after a while is sent again by ``core.tasks.outbox_deliver``."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    not_before = models.DateTimeField(null=True, blank=True)  # a delayed request (a retry's wait): its ETA
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
