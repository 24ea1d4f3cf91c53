"""Dagster definitions, jobs, schedules, resources and the ``orb`` command line."""
