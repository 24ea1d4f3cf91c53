"""Servers the tests start from packages, on loopback: a free port, and waiting for it."""

import socket
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, name: str,
                         why: Callable[[], str] = str, seconds: float = 120) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise, with ``why()``, if the
    process exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {why()}") from None
            time.sleep(0.5)


# The bucket the S3 fixtures (tests/conftest.py) create on a local moto server.
BUCKET = "warehouse"
