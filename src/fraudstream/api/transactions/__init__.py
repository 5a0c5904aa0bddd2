"""Suspicious transactions: the alert queue, details and the analysts' verdicts."""
