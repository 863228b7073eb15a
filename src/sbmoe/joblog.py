"""Send a job's logging, warnings, progress bars and stray prints to its log file."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Within the block, stdout, stderr and the root logger write to ``path``; an exception is logged
    with its traceback before it propagates."""
    with open(path, "w", encoding="utf-8", buffering=1) as handle:
        logging.basicConfig(stream=handle, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logger = logging.getLogger("sbmoe")
        with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            try:
                yield logger
            except BaseException:
                logger.exception("job failed")
                raise
