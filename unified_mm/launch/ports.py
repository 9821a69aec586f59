"""A free TCP port for the local coordinator."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
  """A port nobody listens on now. The OS may reuse it later, but the
  coordinator binds it within seconds, which is good enough on one machine."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((host, 0))
    return s.getsockname()[1]
