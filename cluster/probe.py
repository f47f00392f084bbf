"""Is anybody there? A few seconds' probe of an address before Ray's clients are pointed at it:
they wait on a silent address for minutes, or for ever (a server that accepts and never replies)."""
from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request

SECONDS = 5.0


def tcp(host: str, port: int) -> str | None:
    """None when something accepts a connection there, else why not."""
    try:
        socket.create_connection((host, port), timeout=SECONDS).close()
    except OSError as err:
        return err.strerror or str(err)
    return None


def http_get(url: str) -> str | None:
    """None when an HTTP server answers `url` in time (any status: a 401 is an answer), else why not."""
    try:
        urllib.request.urlopen(url, timeout=SECONDS).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        return str(getattr(err, "reason", err))
    return None
