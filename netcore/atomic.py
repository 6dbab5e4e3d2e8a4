"""Files written whole or not at all: the writer fills a temporary file beside the target, which is renamed onto
it only when writing succeeded (a failure leaves neither a partial file nor the temporary one)."""

from __future__ import annotations

import contextlib
import os
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path, suffix: str = ""):
    """``with replacing("m.keras") as temporary: write(temporary)``: ``path`` appears when the block ends."""
    path = os.fspath(path)
    descriptor, temporary = tempfile.mkstemp(
        prefix=".netcore-", suffix=suffix, dir=os.path.dirname(os.path.abspath(path))
    )
    os.close(descriptor)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; these are ordinary files
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
