"""How every local server (moto host, model servers, the review page) picks its port."""
from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now; the caller binds it right away."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
