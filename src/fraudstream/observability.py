"""Structured logging set-up, done once by the CLI."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    """JSON lines when not on a terminal (or FRAUDSTREAM_LOG_JSON=1), console otherwise."""
    level = (level or os.environ.get("FRAUDSTREAM_LOG_LEVEL", "INFO")).upper()
    if json_logs is None:
        json_logs = os.environ.get("FRAUDSTREAM_LOG_JSON", "") == "1" or not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
