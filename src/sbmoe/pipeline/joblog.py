"""Send a job's logging, warnings, progress bars and stray prints to its log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from sbmoe.io.atomic import DiskFullError
from sbmoe.io.errors import InputError


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Within the block, stdout, stderr and the root logger write to ``path``. Bad input
    (:class:`~sbmoe.io.errors.InputError`), or a full disk (its path named), ends the job with its message
    in the log and on stderr, and exit status 1, without a traceback; any other exception is logged with
    its traceback and propagates."""
    with open(path, "w", encoding="utf-8", buffering=1) as handle:
        logging.basicConfig(
            stream=handle, level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logger = logging.getLogger("sbmoe")
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield logger
        except (InputError, DiskFullError) as error:
            logger.error("error: %s", error)
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        except BaseException:
            logger.exception("job failed")
            raise
