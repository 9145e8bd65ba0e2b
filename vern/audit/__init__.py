"""The audit trail: every access and change recorded, tamper-evident (RFC 9162 Merkle tree with
signed checkpoints), answerable (API, console), fed also by the vendor's product (``vern.sdk``)."""
