"""A local AWS that fails on purpose: moto in-process behind a WSGI middleware that throttles, errors, and loses answers.

Three faults of a send (SES ``SendRawEmail``, SNS ``Publish``), drawn at random in fixed shares:

* throttle: a 400 ``Throttling`` answer; moto never sees the call;
* server error: a 500 ``InternalFailure`` answer; moto never sees the call;
* lost answer: moto accepts and stores the message, then the connection is closed without a reply
  (the client sees ``ConnectionClosedError``): the message went out, and the sender cannot know it.

moto's store holds exactly what was really accepted: count it per recipient to find duplicates.
"""

from __future__ import annotations

import io
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from email import message_from_string
from email.utils import getaddresses
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from tasks.demo.local_aws import _free_port

THROTTLE_BODY = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
    b"<Message>Maximum sending rate exceeded.</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)
SERVER_ERROR_BODY = (
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
    b"<Message>injected</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)


SEND_ACTIONS = (b"Action=SendRawEmail", b"Action=Publish")


class FaultyAws:
    """moto on 127.0.0.1 where a share of sends is throttled, fails with a 5xx, or is accepted with its answer lost.

    ``injected`` counts each fault: ``throttle``, ``server_error``, ``dropped`` (accepted, answer lost).
    """

    def __init__(self, throttle: float = 0.10, server_error: float = 0.02, seed: int = 7, dropped: float = 0.0) -> None:
        self.throttle, self.server_error, self.dropped = throttle, server_error, dropped
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._app = DomainDispatcherApplication(create_backend_app)
        self.port = _free_port()
        self._server = make_server("127.0.0.1", self.port, self._middleware, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyAws:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def _middleware(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if any(action in body for action in SEND_ACTIONS):
            with self._lock:
                draw = self._rng.random()
            if draw < self.throttle:
                self._count("throttle")
                start_response("400 Bad Request", [("Content-Type", "text/xml")])
                return [THROTTLE_BODY]
            if draw < self.throttle + self.server_error:
                self._count("server_error")
                start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
                return [SERVER_ERROR_BODY]
            if draw < self.throttle + self.server_error + self.dropped:
                return self._accept_then_hang_up(environ)
        return self._app(environ, start_response)  # type: ignore[no-any-return]

    def _accept_then_hang_up(self, environ: dict[str, Any]) -> Iterable[bytes]:
        """Let moto accept and store the message, then close the connection before any byte of the answer."""
        b"".join(self._app(environ, lambda status, headers, exc_info=None: lambda data: None))
        self._count("dropped")
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        raise ConnectionResetError("fault: answer dropped")  # werkzeug takes it as a dropped connection

    def _count(self, fault: str) -> None:
        with self._lock:
            self.injected[fault] += 1

    def emails_per_recipient(self, region: str) -> Counter[str]:
        """Count the emails moto really accepted, per recipient address."""
        from moto.ses.models import ses_backends

        counts: Counter[str] = Counter()
        for message in list(ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages):
            parsed = message_from_string(message.raw_data)
            for _, address in getaddresses(parsed.get_all("To", [])):
                counts[address.lower()] += 1
        return counts
