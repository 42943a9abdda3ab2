"""Before any client starts: can this connection reach a broker, and if not, why, in one line.

A Kafka client that cannot connect retries until its own timeout and then says only that it could not
bootstrap; the cause (an untrusted certificate, a wrong password, TLS on one side only) is buried in
its logs. This probe speaks just enough of the protocol to name the cause within seconds: TCP, the TLS
handshake (with the connection's CA and client certificate), ApiVersions, and SASL (PLAIN or SCRAM,
RFC 5802/7677). It opens one connection to the first bootstrap server that accepts TCP and closes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import time

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError

METADATA, API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 18, 17, 36
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM = 58, 33
TLS_RECORD_TYPES = (0x14, 0x15, 0x16, 0x17)  # the first byte a TLS peer sends back


class _Wire:
    """Length-prefixed Kafka requests and responses over one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation = 0

    def call(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        client = b"stream-neuron-probe"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        self.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        prefix = self._read(4)
        size = struct.unpack(">i", prefix)[0]
        if not 0 < size < 64 * 1024 * 1024:
            raise _NotKafkaError(prefix[0])
        response = self._read(size)
        return response[4:]  # after the correlation id

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data


class _NotKafkaError(Exception):
    """The answer is not a Kafka response; ``first`` is its first byte."""

    def __init__(self, first: int) -> None:
        super().__init__(f"an answer starting with byte 0x{first:02x}")
        self.first = first


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _authenticate(wire: _Wire, auth: bytes) -> bytes:
    """One SaslAuthenticate round (v0): the server's bytes, or ``PermissionError`` with its message."""
    response = wire.call(SASL_AUTHENTICATE, 0, _bytes(auth))
    error = struct.unpack(">h", response[:2])[0]
    length = struct.unpack(">h", response[2:4])[0]
    message = response[4 : 4 + length].decode(errors="replace") if length >= 0 else ""
    position = 4 + max(length, 0)
    if error:
        raise PermissionError(message or f"error {error}")
    size = struct.unpack(">i", response[position : position + 4])[0]
    return response[position + 4 : position + 4 + max(size, 0)]


def _scram(wire: _Wire, mechanism: str, user: str, password: str) -> None:
    digest = hashlib.sha256 if mechanism == "SCRAM-SHA-256" else hashlib.sha512
    name = user.replace("=", "=3D").replace(",", "=2C")
    nonce = base64.b64encode(os.urandom(24)).decode()
    first_bare = f"n={name},r={nonce}"
    server_first = _authenticate(wire, f"n,,{first_bare}".encode()).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise PermissionError("the server's SCRAM nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        digest().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    without_proof = f"c=biws,r={fields['r']}"
    message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(digest(client_key).digest(), message, digest).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _authenticate(wire, f"{without_proof},p={proof}".encode())


def _sasl(wire: _Wire, connection: Connection) -> None:
    mechanism = connection.sasl_mechanism or "PLAIN"
    response = wire.call(SASL_HANDSHAKE, 1, _string(mechanism))
    error, count = struct.unpack(">hi", response[:6])
    offered, position = [], 6
    for _ in range(max(count, 0)):
        length = struct.unpack(">h", response[position : position + 2])[0]
        offered.append(response[position + 2 : position + 2 + length].decode())
        position += 2 + length
    if error == UNSUPPORTED_SASL_MECHANISM:
        raise StartupError(
            f"the broker does not offer SASL {mechanism} (it offers {', '.join(offered) or 'none'}): "
            "set --sasl-mechanism"
        )
    user, password = connection.sasl_username or "", connection.sasl_password or ""
    try:
        if mechanism == "PLAIN":
            _authenticate(wire, f"\0{user}\0{password}".encode())
        else:
            _scram(wire, mechanism, user, password)
    except PermissionError as refusal:
        if "after successful authentication" in str(refusal):
            raise StartupError(
                "the broker's listener does not use SASL: set --security-protocol PLAINTEXT or SSL"
            ) from None
        raise StartupError(
            f"the broker refused the SASL {mechanism} login of user {user!r} ({refusal}): check the user "
            "name and the password"
        ) from None


def _tls_context(connection: Connection) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=connection.ssl_cafile)
    context.check_hostname = connection.ssl_check_hostname
    if connection.ssl_certfile:
        context.load_cert_chain(connection.ssl_certfile, connection.ssl_keyfile)
    return context


def _tls_problem(error: ssl.SSLError | OSError, where: str, connection: Connection) -> str:
    text = str(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or text
        if "hostname" in text.lower() or "ip address mismatch" in text.lower():
            return (
                f"the TLS certificate of {where} does not name that host ({detail}): fix --bootstrap-servers"
            )
        return f"the TLS certificate of {where} is not trusted ({detail}): give its CA with --ssl-cafile"
    lowered = text.lower()
    if "certificate required" in lowered or "bad certificate" in lowered or "unknown ca" in lowered:
        if not connection.ssl_certfile:
            return f"{where} wants a client certificate (mutual TLS): give --ssl-certfile and --ssl-keyfile"
        return f"{where} does not accept the client certificate {connection.ssl_certfile} ({text})"
    if any(
        sign in lowered for sign in ("wrong version number", "record layer", "unexpected_eof", "eof occurred")
    ):
        return f"{where} does not speak TLS: set --security-protocol PLAINTEXT or SASL_PLAINTEXT"
    return f"the TLS handshake with {where} failed ({text})"


def probe(connection: Connection, timeout_s: float = 10.0) -> None:
    """Return when a broker accepts this connection (TLS and SASL included); else
    :class:`StartupError` naming the cause."""
    servers = [s.strip() for s in connection.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise StartupError("--bootstrap-servers is empty")
    deadline = time.monotonic() + timeout_s
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            try:
                sock = socket.create_connection((host, int(port)), timeout=5.0)
            except (OSError, ValueError):
                continue
            with sock:
                _handshake(sock, connection, host, server)
            return
        if time.monotonic() >= deadline:
            raise StartupError(
                f"no Kafka broker answers at {connection.bootstrap_servers}: start one (deploy/local-kafka "
                "start, or docker compose up kafka) or fix --bootstrap-servers"
            )
        time.sleep(0.5)


def answers(connection: Connection) -> bool:
    """Whether a broker accepts a new connection now (one try): what tells a wedged client from a broker
    that is away."""
    try:
        probe(connection, timeout_s=0)
    except StartupError:
        return False
    return True


def _handshake(sock: socket.socket, connection: Connection, host: str, server: str) -> None:
    channel: socket.socket = sock
    if connection.tls:
        try:
            channel = _tls_context(connection).wrap_socket(sock, server_hostname=host)
        except ssl.SSLError as error:
            raise StartupError(_tls_problem(error, server, connection)) from None
        except (OSError, ValueError) as error:  # a certificate file that is not PEM, say
            raise StartupError(f"the TLS set-up for {server} failed: {error}") from None
    wire = _Wire(channel)
    try:
        wire.call(API_VERSIONS, 0, b"")
    except ssl.SSLError as error:
        raise StartupError(_tls_problem(error, server, connection)) from None
    except _NotKafkaError as error:
        if not connection.tls and error.first in TLS_RECORD_TYPES:
            raise StartupError(f"{server} speaks TLS: set --security-protocol SSL or SASL_SSL") from None
        raise StartupError(f"{server} does not answer as a Kafka broker ({error})") from None
    except (ConnectionError, OSError, struct.error) as error:
        if not connection.tls:
            raise StartupError(
                f"{server} closed the connection at the first request ({error}): it likely speaks TLS "
                "(set --security-protocol SSL or SASL_SSL)"
            ) from None
        raise StartupError(f"{server} does not answer as a Kafka broker ({error})") from None
    if connection.sasl:
        try:
            _sasl(wire, connection)
        except (ConnectionError, OSError, struct.error, _NotKafkaError) as error:
            raise StartupError(f"the SASL login at {server} failed ({error})") from None
    try:  # a request only an authenticated client may make
        wire.call(METADATA, 0, struct.pack(">i", 0))
    except (ConnectionError, OSError, struct.error, _NotKafkaError):
        wanted = "SASL_SSL" if connection.tls else "SASL_PLAINTEXT"
        raise StartupError(
            f"{server} closed the connection before a login: it wants SASL (set --security-protocol "
            f"{wanted} with --sasl-mechanism and --sasl-username)"
        ) from None
