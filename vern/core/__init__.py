"""Vern's core: settings, database, keys, errors, request context, worker, i18n and
the shared input, rate-limit and writer rules. Imports no domain and not vern.app."""
