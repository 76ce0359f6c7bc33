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
    ``{"status": "ok", "model": "<description>", "nndl": "<version>",
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
number of CPUs, at most 4). The model is only read, never changed, while
serving.
"""

import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
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

__all__ = ["create_app", "MAX_UPLOAD_BYTES", "MAX_SERVED_PIXELS", "READ_METHODS", "STATIC"]

#: The largest image accepted, in bytes (5 MiB).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024

#: The most pixels (width x height) of an image the server prepares; a 16-megapixel photo passes.
MAX_SERVED_PIXELS = 16_000_000

#: The page, its script and its style sheet.
STATIC = Path(__file__).resolve().parent / "static"

#: The segmentation methods of ``POST /api/read?method=...``.
READ_METHODS = ("scored", "components")

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

    def __init__(self, classifier, max_upload_bytes, max_pixels, workers):
        self.classifier = classifier
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.limiter = anyio.CapacityLimiter(workers)
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
        """The image's bytes, from a multipart field ``image`` or from a raw body with an image content type."""
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

    async def work(self, fn, data):
        """``fn(data)`` in a worker thread, at most ``workers`` at once, if the image in ``data`` has at most
        ``max_pixels`` pixels."""
        def checked():
            pixels = _header_pixels(data)
            if pixels is not None and pixels > self.max_pixels:
                raise _Refused(422, f"the image has {pixels:,} pixels; this server prepares at most "
                                    f"{self.max_pixels:,} (scale it down first)")
            return fn(data)

        return await anyio.to_thread.run_sync(checked, limiter=self.limiter)

    # --- routes ------------------------------------------------------------------

    async def index(self, request):
        return HTMLResponse(self.page)

    async def health(self, request):
        from nndl._version import __version__
        return JSONResponse({"status": "ok", "model": self.classifier.description, "nndl": __version__,
                             "max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels})

    async def predict(self, request):
        try:
            data = await self.image_bytes(request)
            [prediction] = await self.work(lambda image: predict(self.classifier, [image]), data)
        except _Refused as e:
            return _error(e.status, e.message)
        except InputError as e:     # not an image, too many pixels, ...
            return _error(422, str(e))
        return JSONResponse(prediction.to_dict())

    async def read(self, request):
        method = request.query_params.get("method", "scored")
        try:
            if method not in READ_METHODS:
                raise _Refused(400, f"unknown method {method!r}: use {' or '.join(READ_METHODS)}")
            data = await self.image_bytes(request)
            reading = await self.work(lambda image: read_number(self.classifier, image, method=method), data)
        except _Refused as e:
            return _error(e.status, e.message)
        except InputError as e:
            return _error(422, str(e))
        return JSONResponse(reading.to_dict())


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


def create_app(model, *, max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_SERVED_PIXELS, workers=None):
    """The ASGI application of ``nndl serve``.

    Parameters
    ----------
    model : Classifier or str or path-like
        A loaded :class:`nndl.digits.predict.Classifier`, or a model file to
        load (any nndl model taking 28x28 = 784 inputs).
    max_upload_bytes : int
        The largest image accepted, in bytes (413 beyond it).
    max_pixels : int
        The most pixels of an image accepted (422 beyond it), at most
        :data:`nndl.digits.prepare.MAX_PIXELS`.
    workers : int, optional
        How many images may be decoded and classified at once; default: the
        number of CPUs, at most 4.

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
    classifier = model if isinstance(model, Classifier) else Classifier.load(model)
    server = _Server(classifier, max_upload_bytes, max_pixels, workers)
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
