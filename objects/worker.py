"""
istore's gunicorn worker: gunicorn's threaded worker (``gthread``) with the
changes below, first so that overload and time-outs are answered the way the
API answers everything else (``gunicorn.conf.py`` selects it;
``docs/deploy.md`` says why threads, with the measurements).

- **Errors of the HTTP parser are JSON.** A request line over
  ``limit_request_line`` is 414, headers over their limits 431, any other
  malformed request 400, each ``{"error", "detail"}``, where gunicorn would
  write an HTML page.
- **Requests and clients that are stuck are cut; long answers are not.**
  gunicorn's own timeout only watches the worker's main loop, which threads
  never block, so the arbiter never kills a long stream. Instead the main
  loop looks, about once a second, at every running request: one on whose
  connection no byte has moved for ``timeout`` seconds, either way (the
  bytes the client acknowledged and sent, from the kernel's ``TCP_INFO``), is
  cut. If it has not started its response it is answered 504
  ``request_timeout`` JSON; if it has (a generator that hangs between chunks,
  a client that stopped reading, a stalled upload), its connection is closed,
  so the client sees a truncated body, never one that looks complete. A
  client that reads slowly but reads is never cut, however long the answer.
  The thread is left to finish on its own; a worker with half of its threads
  in cut requests restarts gracefully. Every deadline inside istore (sources,
  ffmpeg, the capacity queue, the database) is shorter than the default
  timeout, so this is the last resort, not the usual answer. Where the kernel
  gives no ``TCP_INFO``, only requests that have not answered are cut.
- **A busy keep-alive connection stays on its thread.** gthread hands every
  keep-alive connection back to the main loop after each answer: a pipe
  write to wake it, two ``epoll_ctl`` calls, a wake-up when the next
  request arrives, and a hand-off through the thread pool's queue, which
  cost about a quarter of a cached derivative's CPU (``benchmarks/README.md``,
  "Overload and worker model"). Instead the thread that answered waits up to
  ``KEEPALIVE_LINGER`` seconds for the connection's next request and serves
  it itself, as a sync worker would; only a connection that stays quiet
  longer, or one whose thread another connection is waiting for, goes back
  to the main loop. Idle connections never hold a thread longer than that.
- **New connections go to the worker process that holds the fewest** (``objects/balancing.py``):
  a connection stays on the process that accepted it, and whichever process
  was quickest to ``accept()`` used to take most of them.
- **A request waits while a sibling thread holds SQLite's write lock**
  (``istore_site/sqlite3/turns.py``), up to 20 ms: its work would only slow
  that writer down, and every writer waiting for the lock with it.
- **Bodies are read in blocks.** gunicorn's ``Body.read(n)`` gathers ``n``
  bytes 1 KiB at a time, each piece cut from an 8 KiB ``recv`` and the rest
  put back: for a 100 MiB upload, 100,000 rounds of buffer copies that cost
  more CPU than the upload's two digests (benchmarks/README.md,
  "Durability"). ``BlockBody`` asks the same reader for what is still
  missing at once, and the socket is read 64 KiB at a time; what a read
  returns is unchanged.

This module imports gunicorn, not Django: gunicorn loads it before the
application (``istore_site.sqlite3.turns`` is plain Python).
"""
import errno
import io
import json
import os
import select
import socket
import struct
import sys
import threading
import time

from gunicorn.http import body as http_body
from gunicorn.http import errors as http_errors
from gunicorn.http import message
from gunicorn.workers import gthread

from istore_site.sqlite3.turns import yield_to_writer

from .balancing import POLL_SECONDS, YIELD_SECONDS, Board

# gunicorn caps a finite ``limit_request_line`` at 8190 bytes, below what a
# 4096-byte key needs percent-encoded (up to 12 KiB, and a listing's
# ``after=`` may carry another): its documented alternative, 0, is no limit at
# all, and the pure-Python parser then copies the buffer on every read (a
# 10 MB request line cost 24 s of CPU). Raising the cap keeps the limit finite.
REQUEST_LINE_CAP = 65536
message.MAX_REQUEST_LINE = max(message.MAX_REQUEST_LINE, REQUEST_LINE_CAP)

# How long a thread waits for the next request on the keep-alive connection it
# just answered before handing it back to the main loop. A client that sends
# its requests back to back (a browser loading a page, a benchmark, an SDK's
# pool) sends the next one within a millisecond; a longer wait only keeps a
# thread from connections that are queued, which never wait for it (see
# ``ThreadWorker._linger``).
KEEPALIVE_LINGER = 0.05

# Made in gunicorn's master, which imports this module before it forks the workers.
BOARD = Board()


def json_response(status, reason, code, detail):
    """The bytes of a complete JSON error response that closes the connection."""
    body = json.dumps({"error": code, "detail": detail}).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def parser_refusal(exc, cfg):
    """``(status, reason, code, detail)`` for an error of gunicorn's request parser, or None."""
    if isinstance(exc, http_errors.LimitRequestLine):
        return (414, "URI Too Long", "request_line_too_long",
                f"The request line is longer than {cfg.limit_request_line} bytes; keys are at most 4096 "
                "bytes (12 KiB percent-encoded): send a shorter path or query.")
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return (431, "Request Header Fields Too Large", "headers_too_large",
                f"The request headers are over the limits ({cfg.limit_request_fields} fields of at most "
                f"{cfg.limit_request_field_size} bytes each): send fewer or shorter headers.")
    if isinstance(exc, http_errors.ParseException):
        return 400, "Bad Request", "bad_http_request", f"The request is not valid HTTP/1.1: {str(exc)[:200]}"
    return None


class _Request:
    """What the watchdog knows of one request in a thread."""

    __slots__ = ("sock", "last", "moved", "started", "cut", "lock")

    def __init__(self, sock):
        self.sock = sock
        self.last = time.monotonic()  # when it started, or when bytes last moved on its connection
        self.moved = transferred(sock)
        self.started = False  # start_response was called
        self.cut = False
        self.lock = threading.Lock()

    def idle_for(self, now):
        """Seconds since bytes last moved on the connection (either way) or the request began."""
        moved = transferred(self.sock)
        if moved != self.moved:
            self.moved, self.last = moved, now
        return now - self.last


def transferred(sock):
    """Bytes the client has acknowledged plus bytes received from it (Linux ``TCP_INFO``), or
    None where the kernel does not say: then only requests that have not answered are cut."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (AttributeError, OSError):
        return None
    if len(info) < _TCP_INFO_BYTES:
        return None
    acked, received = struct.unpack_from("<QQ", info, _BYTES_ACKED)
    return acked + received


# struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received follow
# 104 bytes of older fields and two 64-bit pacing rates (Linux 4.1 and later).
_BYTES_ACKED = 120
_TCP_INFO_BYTES = 136


RECV_SIZE = 64 * 1024  # gunicorn's SocketUnreader reads 8 KiB at a time
BODY_BLOCK = 1024 * 1024  # the most a body read asks its reader for at once


class BlockBody(http_body.Body):
    """gunicorn's request body, read in blocks: ``read(n)`` returns what gunicorn's would, but asks
    the length, chunked or EOF reader for the missing bytes in pieces of up to ``BODY_BLOCK`` rather
    than 1 KiB. Lines (``readline``) and ``read()`` to the end stay gunicorn's."""

    def read(self, size=None):
        size = self.getsize(size)
        if size == 0 or size == sys.maxsize:
            return super().read(size)
        pieces = [self.buf.getvalue()]
        have = len(pieces[0])
        while have < size:
            data = self.reader.read(min(size - have, BODY_BLOCK))
            if not data:
                break
            pieces.append(data)
            have += len(data)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.buf = io.BytesIO()
        self.buf.write(data[size:])
        return data[:size]


def read_in_blocks(req):
    """Make ``req`` (a parsed gunicorn request) read its body through ``BlockBody``."""
    if type(req.body) is http_body.Body:
        req.body.__class__ = BlockBody
    unreader = getattr(req, "unreader", None)
    if getattr(unreader, "mxchunk", RECV_SIZE) < RECV_SIZE:
        unreader.mxchunk = RECV_SIZE


class _Watched:
    """The WSGI application, telling the watchdog when a response starts."""

    def __init__(self, application, requests):
        self.application, self.requests = application, requests

    def __call__(self, environ, start_response):
        request = self.requests.get(environ.get("gunicorn.socket"))
        if request is None:
            return self.application(environ, start_response)

        def started(status, headers, exc_info=None):
            with request.lock:
                if request.cut:
                    raise TimeoutError("this request was already answered 504 by the watchdog")
                request.started = True
            return start_response(status, headers, exc_info)

        return self.application(environ, started)


def _readable(sock):
    """Whether a connection still waits on the listening socket ``sock``."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker with JSON parser errors, a watchdog for stuck requests, keep-alive
    requests served by the thread that answered the last one, and new connections balanced over
    the worker processes (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = {}  # client socket -> _Request, while a request runs in a thread
        self.queued = 0  # connections handed to the thread pool that no thread has taken yet
        self.queued_lock = threading.Lock()
        self.place = None  # this process's place on BOARD

    def init_process(self):
        self.place = BOARD.claim(os.getpid())
        super().init_process()

    def accept(self, listener):
        # Leave the connection to a worker that holds fewer, woken by it too, while it takes it.
        if self.place is not None:
            deadline = time.monotonic() + YIELD_SECONDS
            while BOARD.fewer_elsewhere(self.place, self.nr_conns) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                if not _readable(listener):
                    return
        super().accept(listener)

    def wait_for_and_dispatch_events(self, timeout):
        # Every accept, close and hand-off is an event of this loop: publish once after them.
        super().wait_for_and_dispatch_events(timeout)
        self._publish()

    def _publish(self):
        if self.place is not None:
            BOARD.publish(self.place, self.nr_conns)

    def run(self):
        try:
            super().run()
        finally:
            if self.place is not None:
                BOARD.release(self.place)

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = _Watched(self.wsgi, self.requests)

    def enqueue_req(self, conn):
        with self.queued_lock:
            self.queued += 1
        super().enqueue_req(conn)

    def handle(self, conn):
        """Serve the connection's request, then its next ones while they follow without a pause."""
        with self.queued_lock:
            self.queued -= 1
        keepalive = super().handle(conn)
        while keepalive is True and self._linger(conn):
            keepalive = super().handle(conn)
        return keepalive

    def _linger(self, conn):
        """True once the connection's next request (or its close) can be read: at once when the
        client sent it with the last one (pipelining), else within ``KEEPALIVE_LINGER`` unless a
        connection is queued for a thread."""
        if not self.alive:
            return False
        # gunicorn's parser may already hold the next request; the socket then shows nothing to
        # read, and a connection handed to the poller would wait for it until its keep-alive ends.
        with conn.parser.unreader.buf.getbuffer() as buffered:
            if buffered.nbytes:
                return True
        if self.queued > 0:
            return False
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        try:
            return bool(poller.poll(KEEPALIVE_LINGER * 1000))
        except (OSError, ValueError):
            return False

    def handle_request(self, req, conn):
        yield_to_writer()
        read_in_blocks(req)
        self.requests[conn.sock] = _Request(conn.sock)
        try:
            return super().handle_request(req, conn)
        finally:
            self.requests.pop(conn.sock, None)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # gunicorn would keep idle keep-alive connections through the whole
        # graceful_timeout of a stop; they carry no request, so close them now.
        self.method_queue.defer(self._close_idle)

    def _close_idle(self):
        for waiting in (self.keepalived_conns, self.pending_conns):
            while waiting:
                conn = waiting.popleft()
                try:
                    self.poller.unregister(conn.sock)
                except (OSError, KeyError, ValueError):
                    pass
                self.nr_conns -= 1
                conn.close()

    def murder_keepalived(self):
        super().murder_keepalived()
        now = time.monotonic()
        running = list(self.requests.values())
        for request in running:
            if not request.cut and request.idle_for(now) > self.cfg.timeout:
                if request.moved is not None or not request.started:
                    self._cut(request)
        stuck = sum(request.cut for request in running)
        if self.alive and stuck and stuck * 2 >= self.cfg.threads:
            self.log.error("%d of %d threads are in requests cut as stuck; restarting this worker",
                           stuck, self.cfg.threads)
            self.alive = False

    def _cut(self, request):
        with request.lock:
            request.cut = True
            answer = not request.started
        self.log.error("A request moved no byte for %s s (the worker timeout); %s", self.cfg.timeout,
                       "answering 504" if answer else "closing its connection")
        try:
            if answer:
                request.sock.settimeout(1.0)
                request.sock.sendall(json_response(
                    504, "Gateway Timeout", "request_timeout",
                    f"istore could not answer this request within {self.cfg.timeout} s (the worker timeout); "
                    "it was stopped. Try again later."))
            request.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_error(self, req, client, addr, exc):
        refusal = parser_refusal(exc, self.cfg)
        if refusal is None:
            if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                return
            self.log.exception("Error handling request")
            refusal = (500, "Internal Server Error", "server_error",
                       "istore failed on this request; the error was logged.")
        else:
            self.log.warning("Invalid request from %s: %s", (addr or ("",))[0], str(exc)[:200])
        try:
            client.settimeout(1.0)
            client.sendall(json_response(*refusal))
        except OSError:
            pass
