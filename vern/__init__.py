"""Vern: the privacy and security backbone for multi-tenant SaaS platforms."""

__version__ = "0.1.0"
