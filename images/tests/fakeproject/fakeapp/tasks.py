"""Jobs the tests enqueue for the worker."""

import time
from pathlib import Path


def write_marker(path: str, text: str, delay: float = 0.0) -> str:
    """Sleep ``delay`` seconds, then write ``text`` to ``path``."""
    time.sleep(delay)
    Path(path).write_text(text)
    return text
