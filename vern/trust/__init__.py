"""The customers' trust page: what a customer's users may see of the vendor's sub-processors,
measures, agreement, maintenance notices and shared documents."""
