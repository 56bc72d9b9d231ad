"""Celery tasks: ``medflow.infer_chunk``, ``medflow.collect``, ``medflow.reconcile``."""
