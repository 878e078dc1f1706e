"""The logger set-up the training handlers share, as ignite's ``setup_logger`` does it.

ignite's handlers log through a logger of their own that prints INFO and above
to stderr and does not propagate; users rely on seeing "EarlyStopping: Stop
training" without configuring logging, so the same set-up is kept here.
"""

from __future__ import annotations

import logging

from .. import distributed

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def _on_rank_zero(record: logging.LogRecord) -> bool:
    # Decided per line, not when the logger is made: the process group may be
    # initialized after the handler is built.
    return distributed.get_rank() == 0


def handler_logger(name: str) -> logging.Logger:
    """The named logger, configured once (a user's later configuration is kept)."""
    logger = logging.getLogger(name)
    if not getattr(logger, "_fastignite_configured", False):
        if not logger.handlers:
            stream = logging.StreamHandler()
            stream.setLevel(logging.INFO)
            stream.setFormatter(logging.Formatter(_FORMAT))
            stream.addFilter(_on_rank_zero)
            logger.addHandler(stream)
            logger.setLevel(logging.INFO)
        logger.propagate = False
        logger._fastignite_configured = True  # type: ignore[attr-defined]
    return logger


def is_engine(obj: object) -> bool:
    """A fastignite Engine, or ignite's own when ignite is loaded: handlers here
    work on either, as ignite's do on its drop-in subclass."""
    import sys

    from ..engine import Engine

    if isinstance(obj, Engine):
        return True
    ignite_engine = sys.modules.get("ignite.engine.engine")
    return ignite_engine is not None and isinstance(obj, ignite_engine.Engine)
