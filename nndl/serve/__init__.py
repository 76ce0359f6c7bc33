"""The page to draw a digit on: the web app of ``nndl serve`` and the files it ships.

    app       the web page and JSON API of ``nndl serve`` (needs the ``web`` extra)
    static/   the page itself (HTML, CSS, JavaScript; no CDN)

The work behind each request (preparing an image, predicting a digit,
reading a number) is in :mod:`nndl.digits`; this package only wires it to
HTTP. Importing it imports nothing; the web framework is imported by ``app``.
"""
