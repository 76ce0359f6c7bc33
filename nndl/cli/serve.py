"""``nndl serve MODEL``: a local web page to draw digits on, and its JSON API.

The web framework (Starlette), the server (uvicorn) and python-multipart are
the optional ``web`` extra (``pip install 'nndl[web]'``); they are imported
only when the command runs, so ``nndl --help`` works without them. The page
and the API are described in :mod:`nndl.serve.app`.

Before anything is served the model is loaded (a missing file, a file that
is not a model, or a model that does not take 28x28 images ends the
command with one line) and the port is bound (a port in use ends it with
one line too). The server listens on 127.0.0.1 unless ``--host`` says
otherwise: there is no authentication, so exposing it is the user's choice.
"""

import argparse
import errno
import ipaddress
import socket
import sys

from nndl.cli._common import DefaultsHelpFormatter
from nndl.errors import MissingDependencyError, NndlError

__all__ = ["add_commands", "cmd_serve"]

_INSTALL = "pip install 'nndl[web]'"


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535 (or 0 for any free port), got {value}")
    return value


def _megabytes(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megabytes, got {text!r}") from None
    if not 0 < value <= 1024:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1024 (MB), got {text}")
    return value


def _megapixels(text):
    from nndl.digits.prepare import MAX_PIXELS
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels, got {text!r}") from None
    if not 0 < value * 1e6 <= MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_PIXELS / 1e6:g}, got {text}")
    return value


def add_commands(commands) -> None:
    """Add ``nndl serve`` to the sub-command parsers ``commands``."""
    s = commands.add_parser(
        "serve", help="a web page to draw digits on, with a JSON API",
        description="Serve a web page where you draw a digit (mouse, pen or finger) or a whole number and see "
                    "what the network reads, with the probability of each digit and the 28x28 image it "
                    "received; or upload an image. Behind it, a JSON API: POST /api/predict and /api/read "
                    "with an image (multipart field 'image', or the raw body with an image content type), "
                    "GET /api/health. Needs the web extra: " + _INSTALL + ".",
        formatter_class=DefaultsHelpFormatter)
    s.add_argument("model", metavar="MODEL", nargs="?",
                   help="a model taking 28x28 images: nndl train --save (.json, .npz) or nndl conv --save (.pt); "
                        "without one, the convolutional network shipped with nndl")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 lets other machines reach the page (there is no "
                        "authentication)")
    s.add_argument("--port", type=_port, default=8000, help="port to listen on; 0 picks a free one")
    s.add_argument("--max-upload", type=_megabytes, default=5.0, metavar="MB",
                   help="largest image accepted, in megabytes (larger ones get 413)")
    s.add_argument("--max-megapixels", type=_megapixels, default=16.0, metavar="MP",
                   help="most pixels of an image accepted, in millions (larger ones get 422: preparing an image "
                        "takes about 25 bytes of memory per pixel)")
    s.add_argument("--access-log", action="store_true", help="print a line for every request")
    s.set_defaults(run=cmd_serve)


def _web_modules():
    """(uvicorn, create_app, server_config), or MissingDependencyError naming what to install."""
    try:
        import starlette  # noqa: F401
        import uvicorn
        try:
            import python_multipart  # noqa: F401
        except ImportError:
            import multipart  # noqa: F401     # python-multipart before 0.0.13
    except ImportError as e:
        raise MissingDependencyError(f"nndl serve needs the web extra ({e.name or 'a web library'} is not "
                                     f"installed): {_INSTALL}") from None
    from nndl.serve.app import create_app, server_config
    return uvicorn, create_app, server_config


def _log_to_stderr() -> None:
    """The server's own lines (``nndl.serve``: a client gone mid-upload, a read refused as busy) on stderr."""
    import logging
    logger = logging.getLogger("nndl.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("nndl serve: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _is_loopback(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(host, port):
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket bound to (host, port), or NndlError saying why not.

    Binding here, before the server starts, turns "address in use" or an
    unknown host into one line, and lets ``--port 0`` report the port chosen.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise NndlError(f"cannot listen on {host}: {getattr(e, 'strerror', None) or e}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = " (another program is using it: try another --port, or --port 0 for any free one)" \
            if e.errno == errno.EADDRINUSE else ""
        raise NndlError(f"cannot listen on {host} port {port}: {(e.strerror or str(e)).lower()}{hint}") from None
    sock.listen(2048)            # connections wait in the backlog until uvicorn accepts them
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    uvicorn, create_app, server_config = _web_modules()
    app = create_app(args.model, max_upload_bytes=max(1, int(args.max_upload * 1024 * 1024)),
                     max_pixels=max(1, int(args.max_megapixels * 1e6)))
    server = app.state.server
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    url = _url(args.host, port)
    print(f"Serving {server.classifier.description}", flush=True)
    print(f"Open {url} in a browser (the JSON API is described on the page).", flush=True)
    if _is_loopback(args.host):
        print("Only this computer can open it. To let other machines reach it, add --host 0.0.0.0; there is no "
              "authentication, so anyone who can reach the port can use it.", flush=True)
    else:
        print(f"Listening on {args.host} port {port}, reachable from other machines: there is no authentication, "
              "so anyone who can reach the port can use it.", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    _log_to_stderr()
    config = server_config(app, log_level="info" if args.access_log else "warning", access_log=args.access_log,
                           server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:       # Ctrl-C or SIGTERM, re-raised by uvicorn after its graceful shutdown
        pass
    finally:
        sock.close()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0
