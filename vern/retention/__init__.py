"""Data lifecycle: erasure of a person in Vern's own data, and retention rules enforced on a
schedule (see docs/retention.md)."""
