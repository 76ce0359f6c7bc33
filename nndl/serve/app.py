"""The web page and JSON API behind ``nndl serve``: draw a digit, see what the network makes of it.

The application is a Starlette ASGI app (run by uvicorn in ``nndl serve``); the
web framework is imported here and nowhere else in the package, so
``import nndl`` and ``nndl --help`` work without the ``web`` extra.

Routes
------
``GET /``
    The page: a canvas to draw on with mouse, pen or finger; the prediction
    and the ten probabilities as a bar chart, updated while drawing; the
    28x28 image the network received; an upload button; a "whole number"
    mode. Its script and style sheet are served from ``/static/`` and ship in
    the package (no CDN, nothing fetched from elsewhere).
``GET /api/health``
    ``{"status": "ok", "model": "<description, naming the model's file but not its directory>", "nndl": "<version>",
    "max_upload_bytes": 5242880, "max_pixels": 16000000}``.
``POST /api/predict``
    One digit. Answers ``Prediction.to_dict()`` (see
    :mod:`nndl.digits.predict`)::

        {"digit": 7,                      # null when the image is blank
         "probabilities": [0.001, ...],   # ten numbers summing to 1, digit 0 first
         "top3": [[7, 0.93], [9, 0.04], [1, 0.01]],
         "confident": true,
         "message": null,                 # or a sentence, e.g. "the image is blank"
         "image": [[0, 0, ...], ...]}     # 28 rows of 28 ints 0..255: what the network received
``POST /api/read``
    A whole number written in one image. Answers ``Reading.to_dict()`` (see
    :mod:`nndl.digits.read`): the digits read as ``"text"``, one prediction
    per digit, the box of each digit in the image, the method and its
    score. ``?method=components`` segments by connected components only;
    the default, ``?method=scored``, also tries cuts scored by the classifier.

Sending an image
----------------
Both POST routes take any image Pillow reads (PNG, JPEG, GIF, BMP, TIFF,
WebP, ...), sent either way:

- as a multipart form upload, the file in the field ``image``::

      curl -F image=@digit.png http://127.0.0.1:8000/api/predict

- as the raw request body with an image content type::

      curl --data-binary @digit.png -H 'Content-Type: image/png' http://127.0.0.1:8000/api/predict

Errors
------
Every error is JSON, ``{"error": "a sentence saying what was wrong"}``; bad
input never causes a 500 or shows a traceback.

===  ==========================================================================
400  no image in the request: an empty body or file, no ``image`` field, a
     malformed multipart body, an unknown ``method``
413  more than ``max_upload_bytes`` (5 MB by default): refused from the
     ``Content-Length`` header before reading, and bytes are counted while
     reading in case the header is absent or wrong
415  the body (or the uploaded part) is not declared as an image
422  bytes that are not an image Pillow can read, or an image of more than
     ``max_pixels`` pixels (16 million by default, from the image's header,
     before anything is decoded: a decompression bomb, or a photo too large
     to prepare quickly)
408  the upload took more than ``upload_seconds`` (30 s by default)
422  (``/api/read``) an image that splits into more pieces than a written
     number has (:data:`nndl.digits.read.MAX_SEGMENTS`), or whose reading
     takes more than ``read_seconds`` (20 s by default)
503  (``/api/read``) the server is already reading as many images as it
     will hold (``read_workers`` running, ``read_queue`` waiting): try again
     (``Retry-After``); the server's log says so in one line
404  an unknown path; 405 a wrong method
500  a bug in nndl; the traceback goes to the server's log, never to the client
===  ==========================================================================

Resources. Preparing an image takes time and memory in proportion to its
pixels, whatever its size in bytes: about 25 bytes and 0.15 microseconds
of a core per pixel (a 12-megapixel photo: 300 MB and 2 s), and a 50 KB PNG
can hold 40 million pixels. So the server refuses images of more
than ``max_pixels`` pixels, well under the 40 million that
:data:`nndl.digits.prepare.MAX_PIXELS` allows a file of one's own, and at most
``workers`` images are prepared and classified at once (by default the
number of CPUs, at most 4). Reading a whole number (``/api/read``) can take
seconds; reads run apart from predictions, at most ``read_workers`` at once
(half of ``workers``) with ``read_queue`` more waiting, each within
``read_seconds``, so ``/api/health`` and ``/api/predict`` keep answering
while they run. A client that goes away mid-upload leaves one line in the
log (logger ``nndl.serve``), not a traceback; a connection whose request
headers do not all arrive within ``HEADER_SECONDS`` is closed
(:func:`server_config`, which ``nndl serve`` runs uvicorn with). No answer
and no line of the log for a client's mistake shows a path of the server's
files or a traceback. The model is only read, never changed, while serving.
"""

import io
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:                       # (the checker sees one of the two places it may come from)
    from python_multipart.exceptions import FormParserError
else:
    try:
        from python_multipart.exceptions import FormParserError
    except ImportError:                 # python-multipart before 0.0.13
        from multipart.exceptions import FormParserError

from nndl.digits.predict import Classifier, predict
from nndl.digits.read import read_number
from nndl.errors import InputError

__all__ = ["create_app", "server_config", "MAX_UPLOAD_BYTES", "MAX_SERVED_PIXELS", "READ_METHODS", "STATIC",
           "READ_SECONDS", "UPLOAD_SECONDS", "HEADER_SECONDS"]

#: Where the server's own lines go (a client that went away, a read refused for load): one line each.
log = logging.getLogger("nndl.serve")

#: The largest image accepted, in bytes (5 MiB).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024

#: The most pixels (width x height) of an image the server prepares; a 16-megapixel photo passes.
MAX_SERVED_PIXELS = 16_000_000

#: The page, its script and its style sheet.
STATIC = Path(__file__).resolve().parent / "static"

#: The segmentation methods of ``POST /api/read?method=...``.
READ_METHODS = ("scored", "components")

#: The most seconds one ``/api/read`` may spend segmenting and scoring (then 422, saying so).
READ_SECONDS = 20.0

#: The most seconds a client may take to send its whole upload (then 408).
UPLOAD_SECONDS = 30.0

#: The most seconds a client may take to send a request's headers (then the connection is closed): half-open
#: connections (headers sent a byte at a time, never finished) do not pile up.
HEADER_SECONDS = 10.0

#: Room for a multipart body's boundaries and part headers on top of the image itself.
_MULTIPART_OVERHEAD = 16 * 1024

#: Sent with every response: nothing but this server's own scripts, styles and images (data: and blob:
#: for the 28x28 images and the upload preview); no framing by other sites.
_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
                                 b"img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; "
                                 b"form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _Refused(Exception):
    """A request that cannot be served: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def _header_pixels(data):
    """Width x height from the image's header (nothing is decoded), or None when Pillow cannot tell.

    None defers to :func:`nndl.digits.prepare.open_image`, which reports what is wrong with the bytes.
    """
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Exception:           # not an image, damaged, or over Pillow's own limit: open_image says which
        return None
    return width * height


def _megabytes(n):
    return f"{n / (1024 * 1024):.3g} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


class _Server:
    """The state behind the routes: the classifier, the upload limit, and the limit on concurrent work."""

    def __init__(self, classifier, max_upload_bytes, max_pixels, workers, read_workers, read_queue, read_seconds,
                 upload_seconds):
        self.classifier = classifier
        self.description = _public_description(classifier)
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.limiter = anyio.CapacityLimiter(workers)               # /api/predict: quick, one image each
        self.read_limiter = anyio.CapacityLimiter(read_workers)     # /api/read: slow, apart from the quick ones
        self.read_capacity = read_workers + read_queue              # reads running or waiting; more get 503
        self.reads = 0
        self.read_seconds = read_seconds
        self.upload_seconds = upload_seconds
        self.page = (STATIC / "index.html").read_text(encoding="utf-8")

    # --- reading the image out of the request -----------------------------------

    async def _read_body(self, request, limit):
        """The request body, refusing (413) past ``limit`` bytes: first by Content-Length, then by counting."""
        length = request.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise _Refused(400, f"the Content-Length header is not a number: {length!r}")
            if int(length) > limit:
                raise _Refused(413, f"the upload is {_megabytes(int(length))}; the limit is "
                                    f"{_megabytes(self.max_upload_bytes)}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"the upload is over the limit of {_megabytes(self.max_upload_bytes)}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def image_bytes(self, request):
        """The image's bytes, from a multipart field ``image`` or from a raw body with an image content type;
        408 when the upload takes more than ``upload_seconds``."""
        try:
            with anyio.fail_after(self.upload_seconds):
                return await self._image_bytes(request)
        except TimeoutError:
            raise _Refused(408, f"the upload took more than {self.upload_seconds:g} s") from None

    async def _image_bytes(self, request):
        content_type = request.headers.get("content-type", "")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            body = await self._read_body(request, self.max_upload_bytes + _MULTIPART_OVERHEAD)
            data = await self._multipart_image(request, body)
        elif media_type.startswith("image/"):
            data = await self._read_body(request, self.max_upload_bytes)
            if not data:
                raise _Refused(400, "the request body is empty: send the image's bytes as the body")
        else:
            got = f"Content-Type {media_type}" if media_type else "no Content-Type"
            raise _Refused(415, f"expected an image: got {got}; send the image as the body with its image/... "
                                "content type, or as a multipart/form-data upload in the field 'image'")
        if len(data) > self.max_upload_bytes:
            raise _Refused(413, f"the image is {_megabytes(len(data))}; the limit is "
                                f"{_megabytes(self.max_upload_bytes)}")
        return data

    async def _multipart_image(self, request, body):
        """The bytes of the file in the field ``image`` of a multipart body already read."""
        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=16, max_part_size=64 * 1024)
        except HTTPException as e:          # Starlette's answer to a malformed multipart body
            raise _Refused(400, f"the multipart body cannot be parsed: {e.detail}") from None
        except FormParserError as e:        # the same, from python-multipart, where Starlette lets it through
            raise _Refused(400, f"the multipart body cannot be parsed: {e}") from None
        try:
            fields = form.getlist("image")
            if not fields:
                raise _Refused(400, "no field 'image' in the multipart upload: send the image file in a field "
                                    "named image")
            upload = fields[0]
            if isinstance(upload, str):
                raise _Refused(400, "the field 'image' must be a file upload (a part with a filename), not text")
            declared = (upload.content_type or "").split(";")[0].strip().lower()
            if declared and not declared.startswith("image/") and declared != "application/octet-stream":
                raise _Refused(415, f"the uploaded file is declared as {declared}, not as an image")
            data = await upload.read()
        finally:
            await form.close()
        if not data:
            raise _Refused(400, "the uploaded file is empty")
        return data

    async def work(self, fn, data, limiter=None):
        """``fn(data)`` in a worker thread, at most ``workers`` at once (or as ``limiter`` allows), if the image
        in ``data`` has at most ``max_pixels`` pixels."""
        def checked():
            pixels = _header_pixels(data)
            if pixels is not None and pixels > self.max_pixels:
                raise _Refused(422, f"the image has {pixels:,} pixels; this server prepares at most "
                                    f"{self.max_pixels:,} (scale it down first)")
            return fn(data)

        return await anyio.to_thread.run_sync(checked, limiter=limiter or self.limiter)

    # --- routes ------------------------------------------------------------------

    async def index(self, request):
        return HTMLResponse(self.page)

    async def health(self, request):
        from nndl._version import __version__
        return JSONResponse({"status": "ok", "model": self.description, "nndl": __version__,
                             "max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels})

    async def predict(self, request):
        try:
            data = await self.image_bytes(request)
            [prediction] = await self.work(lambda image: predict(self.classifier, [image]), data)
        except _Refused as e:
            return _error(e.status, e.message)
        except InputError as e:     # not an image, too many pixels, ...
            return _error(422, str(e))
        except ClientDisconnect:
            return _gone(request)
        return JSONResponse(prediction.to_dict())

    async def read(self, request):
        method = request.query_params.get("method", "scored")
        try:
            if method not in READ_METHODS:
                raise _Refused(400, f"unknown method {method!r}: use {' or '.join(READ_METHODS)}")
            if self.reads >= self.read_capacity:
                log.warning("busy: refused a read from %s (%d reads running or waiting)", _client(request),
                            self.reads)
                return JSONResponse({"error": "the server is busy reading other images: try again in a few "
                                              "seconds"}, status_code=503, headers={"Retry-After": "5"})
            self.reads += 1
            try:
                data = await self.image_bytes(request)
                reading = await self.work(lambda image: read_number(self.classifier, image, method=method,
                                                                    time_limit=self.read_seconds),
                                          data, self.read_limiter)
            finally:
                self.reads -= 1
        except _Refused as e:
            return _error(e.status, e.message)
        except InputError as e:
            return _error(422, str(e))
        except ClientDisconnect:
            return _gone(request)
        return JSONResponse(reading.to_dict())


def _public_description(classifier):
    """The classifier's description naming its model file, not the directories it is in."""
    if not classifier.source:
        return classifier.description
    return classifier.description.replace(f", from {classifier.source}", f", from {Path(classifier.source).name}")


def _client(request):
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


def _gone(request):
    """A client that went away before its upload was complete: one line in the log, nothing to answer."""
    log.warning("%s disconnected before its upload to %s was complete", _client(request), request.url.path)
    return _error(400, "the client disconnected")


async def _http_error(request, exc):
    """404, 405, ... as JSON like every other error."""
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request, exc):
    """A bug: the traceback goes to the server's log (Starlette re-raises to the server), not to the client."""
    return _error(500, "internal error in nndl; the server's log has the details")


class _SecurityHeaders:
    """ASGI middleware adding ``_SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": list(message.get("headers", []))
                           + [h for h in _SECURITY_HEADERS if h[0] not in names]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(model, *, max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_SERVED_PIXELS, workers=None,
               read_workers=None, read_queue=4, read_seconds=READ_SECONDS, upload_seconds=UPLOAD_SECONDS):
    """The ASGI application of ``nndl serve``.

    Parameters
    ----------
    model : Classifier or str or path-like or None
        A loaded :class:`nndl.digits.predict.Classifier`, or a model file to
        load (any nndl model taking 28x28 = 784 inputs), or None for the
        network shipped with nndl.
    max_upload_bytes : int
        The largest image accepted, in bytes (413 beyond it).
    max_pixels : int
        The most pixels of an image accepted (422 beyond it), at most
        :data:`nndl.digits.prepare.MAX_PIXELS`.
    workers : int, optional
        How many images ``/api/predict`` may decode and classify at once;
        default: the number of CPUs, at most 4.
    read_workers : int, optional
        How many ``/api/read`` requests may run at once, apart from the
        predictions (so a slow read never holds up a quick prediction);
        default: half of ``workers``, at least 1.
    read_queue : int
        How many more reads may wait for one of them; beyond that a read is
        answered 503 at once.
    read_seconds : float
        The most seconds one read may spend segmenting and scoring (422 beyond).
    upload_seconds : float
        The most seconds a client may take to send its image (408 beyond).

    Returns
    -------
    starlette.applications.Starlette
        Serve it with any ASGI server: ``uvicorn.run(create_app("net.json"))``.

    Raises
    ------
    NndlError
        For a model file that is missing, not a model, or of the wrong input size.
    """
    if not (isinstance(max_upload_bytes, int) and max_upload_bytes > 0):
        raise ValueError(f"max_upload_bytes must be a positive whole number, got {max_upload_bytes!r}")
    from nndl.digits.prepare import MAX_PIXELS
    if not (isinstance(max_pixels, int) and 0 < max_pixels <= MAX_PIXELS):
        raise ValueError(f"max_pixels must be a whole number from 1 to {MAX_PIXELS:,}, got {max_pixels!r}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if not (isinstance(workers, int) and workers > 0):
        raise ValueError(f"workers must be a positive whole number, got {workers!r}")
    if read_workers is None:
        read_workers = max(1, workers // 2)
    if not (isinstance(read_workers, int) and read_workers > 0):
        raise ValueError(f"read_workers must be a positive whole number, got {read_workers!r}")
    if not (isinstance(read_queue, int) and read_queue >= 0):
        raise ValueError(f"read_queue must be a whole number of at least 0, got {read_queue!r}")
    for name, value in (("read_seconds", read_seconds), ("upload_seconds", upload_seconds)):
        if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    classifier = Classifier.of(model)
    server = _Server(classifier, max_upload_bytes, max_pixels, workers, read_workers, read_queue, read_seconds,
                     upload_seconds)
    routes = [
        Route("/", server.index, methods=["GET"]),
        Route("/api/health", server.health, methods=["GET"]),
        Route("/api/predict", server.predict, methods=["POST"]),
        Route("/api/read", server.read, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.server = server
    app.add_middleware(_SecurityHeaders)
    return app


def server_config(app, *, header_seconds=HEADER_SECONDS, **settings):
    """The uvicorn configuration ``nndl serve`` runs ``app`` with: HTTP/1.1 by h11, with a time limit on
    receiving a request's headers.

    uvicorn itself closes a keep-alive connection idle between requests
    (``timeout_keep_alive``) but waits for ever for headers that never end
    (a "slowloris": headers sent a byte at a time). Here a connection is
    closed when a request's headers have not all arrived ``header_seconds``
    after the connection was made or the previous response was sent. The
    headers' size is bounded by h11 (16 KiB).

    Parameters
    ----------
    app : the ASGI application (``create_app``)
    header_seconds : float
    **settings
        Other ``uvicorn.Config`` settings (``log_level``, ``access_log``, ...).

    Returns
    -------
    uvicorn.Config
    """
    import uvicorn
    if not (isinstance(header_seconds, (int, float)) and 0 < header_seconds < float("inf")):
        raise ValueError(f"header_seconds must be a positive number of seconds, got {header_seconds!r}")
    settings.setdefault("lifespan", "off")
    settings.setdefault("timeout_keep_alive", 5)
    settings.setdefault("h11_max_incomplete_event_size", 16 * 1024)
    return uvicorn.Config(app, http=_header_timeout_protocol(float(header_seconds)), **settings)


def _header_timeout_protocol(seconds):
    """uvicorn's h11 protocol, closing a connection whose request headers take more than ``seconds``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer = None

        def _in_request(self):
            return self.cycle is not None and not self.cycle.response_complete

        def _start_header_timer(self):
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(seconds, self._headers_timed_out)

        def _cancel_header_timer(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self):
            self._header_timer = None
            if not self._in_request() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport):
            super().connection_made(transport)
            self._start_header_timer()

        def handle_events(self):
            super().handle_events()
            if self._in_request():                  # the headers are in: the application has the request
                self._cancel_header_timer()

        def on_response_complete(self):
            if not self.transport.is_closing():
                self._start_header_timer()          # for the next request on this connection
            super().on_response_complete()

        def connection_lost(self, exc):
            self._cancel_header_timer()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
