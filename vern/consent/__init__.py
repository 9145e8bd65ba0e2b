"""Purposes, notices, consent records as proof, the cookie banner and the newsletter flows."""
