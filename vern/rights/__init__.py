"""Data subject rights: requests, verification, deadlines, execution across the product's databases."""
