"""A client of Supervisor's XML-RPC interface (`supervisor.*` methods), standard library only.

Credentials go in an `Authorization` header, never in the URL, so no error message or log line
that names the URL carries them."""

from __future__ import annotations

import base64
import http.client
import xmlrpc.client
from typing import Any, cast

TIMEOUT_SECONDS = 10.0


class SupervisorUnreachable(Exception):
    """Supervisor could not be asked: refused, timed out, wrong credentials, not Supervisor."""


class SupervisorFault(Exception):
    """Supervisor answered with a fault: `name` is its fault name (BAD_NAME, NOT_RUNNING...)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


_FAULT_NAMES = {
    10: "BAD_NAME",
    30: "FAILED",
    40: "ABNORMAL_TERMINATION",
    50: "SPAWN_ERROR",
    60: "ALREADY_STARTED",
    70: "NOT_RUNNING",
    6: "SHUTDOWN_STATE",
}


class _Transport(xmlrpc.client.Transport):
    """HTTP transport with a timeout and basic-auth credentials sent as a header."""

    def __init__(self, username: str, password: str, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self._auth = ""
        if username:
            pair = f"{username}:{password}".encode()
            self._auth = "Basic " + base64.b64encode(pair).decode("ascii")

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def send_headers(self, connection: http.client.HTTPConnection, headers: Any) -> None:
        if self._auth:
            connection.putheader("Authorization", self._auth)
        super().send_headers(connection, headers)


class SupervisorClient:
    """Calls to one Supervisor over HTTP XML-RPC (`http://host:port/RPC2`)."""

    def __init__(
        self, url: str, username: str = "", password: str = "", timeout: float = TIMEOUT_SECONDS
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise SupervisorUnreachable("the Supervisor URL must start with http:// or https://")
        self.url = url
        self._proxy = xmlrpc.client.ServerProxy(
            url, transport=_Transport(username, password, timeout), allow_none=True
        )

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            name = _FAULT_NAMES.get(fault.faultCode, f"FAULT_{fault.faultCode}")
            raise SupervisorFault(name, str(fault.faultString)) from None
        except xmlrpc.client.ProtocolError as error:
            reason = "wrong username or password" if error.errcode == 401 else error.errmsg
            raise SupervisorUnreachable(f"{self.url} answered {error.errcode}: {reason}") from None
        except (OSError, http.client.HTTPException) as error:
            raise SupervisorUnreachable(f"{self.url}: {error}") from None
        except (xmlrpc.client.ResponseError, ValueError) as error:
            raise SupervisorUnreachable(
                f"{self.url} did not answer as Supervisor: {error}"
            ) from None

    def processes(self) -> list[dict[str, Any]]:
        """`getAllProcessInfo`: every process with state, pid, start, stop, now, exit status."""
        return cast(list[dict[str, Any]], self._call("getAllProcessInfo"))

    def config(self) -> list[dict[str, Any]]:
        """`getAllConfigInfo`: each process's configuration (exit codes it expects, ...)."""
        return cast(list[dict[str, Any]], self._call("getAllConfigInfo"))

    def start(self, name: str) -> None:
        """Start `name` (`group:name`) and wait until it is running or failed."""
        self._call("startProcess", name, True)

    def stop(self, name: str) -> None:
        """Stop `name` and wait until it has stopped."""
        self._call("stopProcess", name, True)

    def tail(self, name: str, length: int, stream: str = "stdout") -> str:
        """The last `length` bytes of the process's stdout or stderr log."""
        method = "tailProcessStderrLog" if stream == "stderr" else "tailProcessStdoutLog"
        text, _offset, _overflow = self._call(method, name, 0, length)
        return str(text)
