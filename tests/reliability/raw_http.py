"""Requests written by hand on a socket, to send part of a body and see whether the server answers before
the rest arrives (what a body-size limit or an access check must do)."""

import http.client
import json
import socket
from dataclasses import dataclass

from tests.reliability.server import REQUEST_TIMEOUT_S, LiveServer

BOUNDARY = "reliability-boundary-3f9a"
CHUNK = 16 * 1024


@dataclass(frozen=True)
class RawAnswer:
    status: int
    detail: str
    body_bytes_sent: int  # of the body, when the answer came


def multipart_head(filename: str = "big.wav") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()


def partial_upload(server: LiveServer, path: str, *, send_bytes: int, declared_length: int | None,
                   headers: dict[str, str] | None = None) -> RawAnswer:
    """POST a multipart body of which only `send_bytes` are ever sent: with `declared_length` as its
    Content-Length, or chunked (no Content-Length) when None; the final chunk is never sent either. Returns
    the server's answer, which can only come if the server decided before the body was complete."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {declared_length}" if declared_length is not None
                 else "Transfer-Encoding: chunked")
    body = multipart_head() + b"\0" * max(0, send_bytes - len(multipart_head()))
    with socket.create_connection(("127.0.0.1", server.port), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        try:
            for start in range(0, len(body), CHUNK):
                piece = body[start:start + CHUNK]
                sock.sendall(piece if declared_length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: read what it said
        response = http.client.HTTPResponse(sock)
        response.begin()
        payload = response.read()
    detail = json.loads(payload).get("detail", "") if payload.startswith(b"{") else payload.decode()
    return RawAnswer(response.status, str(detail), sent)
