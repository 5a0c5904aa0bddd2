"""Offline references that the streaming code is tested against."""
