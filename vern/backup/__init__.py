"""Backups of Vern's own database: pgBackRest on PostgreSQL, the online backup API on SQLite,
the data keys backed up apart, and restore drills recorded as evidence."""
