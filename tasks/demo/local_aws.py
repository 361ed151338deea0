"""A local AWS for the embedded default: moto's server in-process, on loopback only."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parseaddr

import boto3
from moto.server import ThreadedMotoServer

# Fake credentials so boto3 never looks for real ones while talking to moto.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_aws(region: str, sender: str) -> Iterator[str]:
    """Start moto on 127.0.0.1, point boto3 at it, verify the sender; yield the endpoint URL.

    The environment is restored and the server stopped on exit.
    """
    # moto's web server logs every request; the demo's own summary says what was sent
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        ses = boto3.client("ses", region_name=region, endpoint_url=endpoint)
        ses.verify_email_identity(EmailAddress=parseaddr(sender)[1])
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
