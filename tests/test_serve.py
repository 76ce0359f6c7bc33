"""nndl serve: the JSON API through Starlette's TestClient, the command line, and the page in a real Chromium.

The API tests use a network with random weights where the assertion does not
depend on what the network learned, and a small network trained on MNIST
(one epoch on 5,000 images) where it does. The browser tests drive Debian's
headless Chromium with Selenium (apt-get install chromium chromium-driver;
pip install selenium) against uvicorn serving on a free port, and skip,
saying why, where either is missing.
"""

import base64
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import default_sigint

from nndl.cli import main
from nndl.engine.feedforward import FeedforwardNetwork
from nndl.engine.modelio import save

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _web_missing():
    """Why the tests of the server cannot run here, or None."""
    for names in (("starlette",), ("uvicorn",), ("python_multipart", "multipart"), ("httpx2", "httpx")):
        if not any(importlib.util.find_spec(name) for name in names):
            return f"{names[0]} is not installed (pip install 'nndl[web]'; the test client needs {names[0]})" \
                if names[0].startswith("httpx") else f"{names[0]} is not installed (pip install 'nndl[web]')"
    return None


WEB_MISSING = _web_missing()
needs_web = pytest.mark.skipif(WEB_MISSING is not None, reason=str(WEB_MISSING))


# --- models and images --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    """A [784, 30, 10] network with random weights: for tests whose assertions do not need a trained one."""
    path = tmp_path_factory.mktemp("serve") / "random.npz"
    save(FeedforwardNetwork([784, 30, 10], seed=0), path)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, mnist_data):
    """(path, network): a [784, 30, 10] network trained for one epoch on 5,000 MNIST images (about 90%)."""
    from nndl.training import train
    net = FeedforwardNetwork([784, 30, 10], seed=1)
    images, labels = mnist_data.training.images[:5000], mnist_data.training.labels[:5000]
    train(net, (images, labels), epochs=1, mini_batch_size=10, eta=0.5, seed=1)
    path = tmp_path_factory.mktemp("serve") / "trained.npz"
    save(net, path)
    return path, net


def png(image, mode=None):
    """PNG bytes of a uint8 array or a Pillow image."""
    from PIL import Image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def on_paper(digit, scale=3, shift=(7, 4), size=120):
    """An MNIST digit (784,) in [0, 1] as a person would photograph it: enlarged, black on white, off-centre."""
    from PIL import Image
    ink = Image.fromarray(np.round(digit.reshape(28, 28) * 255).astype(np.uint8))
    ink = ink.resize((28 * scale, 28 * scale), Image.BILINEAR)
    paper = Image.new("L", (size, size), 0)
    paper.paste(ink, shift)
    return 255 - np.asarray(paper)


def drawn_one(width=280, height=280, x=140):
    """A canvas like the page's: white, with a thick black vertical stroke (a "1")."""
    canvas = np.full((height, width), 255, dtype=np.uint8)
    canvas[50:230, x - 10:x + 10] = 0
    return canvas


# --- the API --------------------------------------------------------------------------------------


def client_for(model, **settings):
    from starlette.testclient import TestClient

    from nndl.serve.app import create_app
    return TestClient(create_app(model, **settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(random_model):
    with client_for(random_model, max_upload_bytes=200_000) as c:
        yield c


def assert_prediction(answer):
    assert set(answer) >= {"digit", "probabilities", "top3", "confident", "message", "image"}
    p = np.array(answer["probabilities"])
    assert p.shape == (10,) and np.all(p >= 0) and abs(p.sum() - 1) < 1e-6
    assert answer["digit"] == int(p.argmax()) == answer["top3"][0][0]
    assert [d for d, _ in answer["top3"]] == list(np.argsort(-p, kind="stable")[:3])
    image = np.array(answer["image"])
    assert image.shape == (28, 28) and image.min() >= 0 and image.max() <= 255 and image.dtype.kind == "i"
    return p, image


@needs_web
def test_health_names_the_model_and_the_limit(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    answer = r.json()
    assert answer["status"] == "ok" and answer["max_upload_bytes"] == 200_000
    assert answer["max_pixels"] == 16_000_000
    assert "784" in answer["model"]


@needs_web
def test_the_page_and_its_assets_come_from_this_server(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for needed in ('<canvas id="pad"', 'id="bars"', 'id="seen"', 'type="file"', 'id="clear"', 'value="number"',
                   "/api/predict", "/api/read"):
        assert needed in html
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    # Every script, style sheet and image comes from this server: no CDN, nothing absolute.
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert "//" not in url, url
    for asset, kind in [("static/app.js", "javascript"), ("static/style.css", "text/css")]:
        r = client.get("/" + asset)
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert not re.search(r"https?://|//cdn|@import|url\(", r.text), asset
    assert client.get("/static/nothing.js").status_code == 404


@needs_web
def test_predict_takes_a_raw_body_or_a_multipart_upload_and_agrees_with_itself(client):
    image = png(drawn_one())
    raw = client.post("/api/predict", content=image, headers={"Content-Type": "image/png"})
    form = client.post("/api/predict", files={"image": ("one.png", image, "image/png")})
    assert raw.status_code == form.status_code == 200
    assert raw.json() == form.json()
    p, seen = assert_prediction(raw.json())
    assert seen.max() == 255 and seen[:, 13:15].mean() > seen[:, :8].mean()    # a vertical stroke, centred
    # A file the browser could not name the type of still counts as an image if Pillow reads it.
    octet = client.post("/api/predict", files={"image": ("one", image, "application/octet-stream")})
    assert octet.status_code == 200 and octet.json() == raw.json()


@needs_web
def test_a_blank_image_is_answered_with_no_digit_and_a_reason(client):
    r = client.post("/api/predict", content=png(np.full((50, 50), 255, np.uint8)),
                    headers={"Content-Type": "image/png"})
    assert r.status_code == 200
    answer = r.json()
    assert answer["digit"] is None and "blank" in answer["message"]


@needs_web
def test_an_mnist_digit_on_paper_gets_the_networks_answer_for_the_original(trained, mnist_data):
    path, net = trained
    digits = mnist_data.test.images[:20]
    expected = net.predict(digits)
    with client_for(path) as c:
        answers = []
        for digit in digits:
            r = c.post("/api/predict", files={"image": ("digit.png", png(on_paper(digit)), "image/png")})
            assert r.status_code == 200
            answers.append(r.json()["digit"])
        assert np.sum(np.array(answers) == expected) >= 19
        r = c.post("/api/predict", content=png(drawn_one()), headers={"Content-Type": "image/png"})
        assert r.json()["digit"] == 1          # a stroke like one drawn on the page's canvas reads as a one


@needs_web
def test_read_a_number_written_in_mnist_digits(trained, mnist_data):
    from nndl.digits.prepare import compose_number
    path, net = trained
    images, labels = mnist_data.test.images, mnist_data.test.labels
    p = net.feedforward(images[:200])
    sure = [i for i in range(200) if p[i].argmax() == labels[i] and p[i].max() > 0.9][:4]
    number, boxes = compose_number(images[sure], gaps=[6, 8, 5])
    body = png(255 - np.round(number * 255).astype(np.uint8))
    with client_for(path) as c:
        for method in ("components", "scored"):
            r = c.post(f"/api/read?method={method}", files={"image": ("number.png", body, "image/png")})
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["text"] == "".join(str(labels[i]) for i in sure), method
            assert len(answer["boxes"]) == 4 and len(answer["digits"]) == 4
            for prediction in answer["digits"]:
                assert_prediction(prediction)
            for (x0, _y0, x1, _y1), (u0, _v0, u1, _v1) in zip(answer["boxes"], boxes):
                assert abs(x0 - u0) <= 2 and abs(x1 - u1) <= 2


@needs_web
@pytest.mark.parametrize("headers, body, status, words", [
    ({"Content-Type": "image/png"}, b"", 400, "empty"),
    ({"Content-Type": "image/png"}, b"these bytes are not a picture", 422, "not an image"),
    ({"Content-Type": "image/jpeg"}, png(drawn_one())[:300], 422, "damaged"),
    ({"Content-Type": "text/plain"}, b"7", 415, "text/plain"),
    ({"Content-Type": "application/json"}, b'{"image": []}', 415, "application/json"),
    ({}, png(drawn_one()), 415, "no Content-Type"),
    ({"Content-Type": "multipart/form-data"}, b"--x\r\n", 400, "multipart"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, b"not multipart at all", 400, "multipart"),
    ({"Content-Type": "image/png", "Content-Length": "lots"}, b"", 400, "Content-Length"),
])
def test_bad_requests_get_a_json_error_never_a_500(client, headers, body, status, words):
    for route in ("/api/predict", "/api/read"):
        r = client.post(route, content=body, headers=headers)
        assert r.status_code == status, (route, r.text)
        assert r.headers["content-type"] == "application/json"
        assert words in r.json()["error"] and "Traceback" not in r.text


@needs_web
def test_bad_uploads_get_a_json_error(client):
    image = png(drawn_one())
    cases = [
        ({"files": {"picture": ("one.png", image, "image/png")}}, 400, "no field 'image'"),
        ({"data": {"image": "iVBORw0KGgo="}, "files": {"note": ("n.txt", b"hi", "text/plain")}}, 400,
         "must be a file"),
        ({"files": {"image": ("empty.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"image": ("notes.txt", b"seven", "text/plain")}}, 415, "text/plain"),
        ({"files": {"image": ("x.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")}}, 422, "image"),
        ({"files": [("image", ("a.png", image, "image/png")), ("image", ("b.png", image, "image/png"))]}, 400,
         "Too many files"),
        ({"data": {"image": "x"}, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
         "x-www-form-urlencoded"),
    ]
    for kwargs, status, words in cases:
        r = client.post("/api/predict", **kwargs)
        assert r.status_code == status and words in r.json()["error"], (kwargs, r.text)


@needs_web
def test_a_decompression_bomb_is_refused_before_it_is_decoded(client):
    from PIL import Image

    from nndl.digits.prepare import MAX_PIXELS
    side = int(MAX_PIXELS ** 0.5) + 100                    # a few kilobytes that would decode to 40+ megapixels
    bomb = png(Image.new("1", (side, side), 1))
    assert len(bomb) < 200_000
    started = time.perf_counter()
    r = client.post("/api/predict", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and f"{side * side:,} pixels" in r.json()["error"]
    assert time.perf_counter() - started < 2


@needs_web
def test_the_server_prepares_images_of_at_most_max_pixels(random_model):
    from PIL import Image
    with client_for(random_model, max_pixels=1_000_000) as c:
        assert c.get("/api/health").json()["max_pixels"] == 1_000_000
        for route in ("/api/predict", "/api/read"):
            r = c.post(route, content=png(Image.new("L", (1001, 1000), 255)), headers={"Content-Type": "image/png"})
            assert r.status_code == 422 and "1,001,000 pixels" in r.json()["error"]
            assert "at most 1,000,000" in r.json()["error"]
            r = c.post(route, content=png(Image.new("L", (1000, 1000), 255)), headers={"Content-Type": "image/png"})
            assert r.status_code == 200


@needs_web
def test_uploads_over_the_limit_get_413_by_header_and_by_counting(client):
    big = b"\x89PNG" + bytes(200_001)
    r = client.post("/api/predict", content=big, headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    # No Content-Length (chunked): the bytes are counted as they arrive.
    r = client.post("/api/predict", content=iter([big[:100_000], big[100_000:]]), headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = client.post("/api/read", files={"image": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "limit" in r.json()["error"]


@needs_web
def test_the_default_limit_is_5_megabytes(random_model):
    from nndl.serve.app import MAX_UPLOAD_BYTES
    assert MAX_UPLOAD_BYTES == 5 * 1024 * 1024
    with client_for(random_model) as c:
        assert c.get("/api/health").json()["max_upload_bytes"] == MAX_UPLOAD_BYTES
        r = c.post("/api/predict", content=bytes(MAX_UPLOAD_BYTES + 1), headers={"Content-Type": "image/png"})
        assert r.status_code == 413 and "5 MB" in r.json()["error"]
        r = c.post("/api/predict", content=bytes(MAX_UPLOAD_BYTES), headers={"Content-Type": "image/png"})
        assert r.status_code == 422                    # within the limit: read, and refused as not an image


@needs_web
def test_read_refuses_an_unknown_method(client):
    r = client.post("/api/read?method=guess", content=png(drawn_one()), headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "components" in r.json()["error"]


@needs_web
def test_wrong_paths_and_methods_answer_json(client):
    r = client.get("/api/predict")
    assert r.status_code == 405 and r.json()["error"]
    r = client.post("/api/nothing", content=b"x", headers={"Content-Type": "image/png"})
    assert r.status_code == 404 and r.json()["error"]


@needs_web
def test_random_bytes_never_cause_a_500(client):
    rng = np.random.default_rng(0)
    header = png(drawn_one())[:64]
    for i in range(40):
        body = bytes(rng.integers(0, 256, size=int(rng.integers(0, 3000)), dtype=np.uint8))
        if i % 2:
            body = header + body                            # a valid PNG start, then garbage
        for kwargs in ({"content": body, "headers": {"Content-Type": "image/png"}},
                       {"files": {"image": ("x.png", body, "image/png")}}):
            r = client.post("/api/predict" if i % 3 else "/api/read", **kwargs)
            assert r.status_code in (400, 413, 415, 422) and "error" in r.json(), r.text


@needs_web
def test_a_bug_is_a_json_500_without_a_traceback(random_model, monkeypatch):
    import nndl.serve.app as app
    monkeypatch.setattr(app, "predict", lambda model, images: 1 / 0)
    with client_for(random_model) as c:
        r = c.post("/api/predict", content=png(drawn_one()), headers={"Content-Type": "image/png"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal error in nndl; the server's log has the details"}


# --- the command line -----------------------------------------------------------------------------


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err):
    return code == 2 and err.count("\n") == 1 and err.startswith("nndl: error:")


@needs_web
def test_serve_refuses_a_missing_or_wrong_model_before_serving(capsys, tmp_path):
    code, out, err = run(capsys, "serve", tmp_path / "nothing.json", "--port", 0)
    assert one_line_error(code, err) and "nothing.json" in err and "Serving" not in out
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    code, out, err = run(capsys, "serve", tmp_path / "notes.json", "--port", 0)
    assert one_line_error(code, err) and "Serving" not in out
    save(FeedforwardNetwork([100, 10, 10], seed=0), tmp_path / "small.npz")
    code, out, err = run(capsys, "serve", tmp_path / "small.npz", "--port", 0)
    assert one_line_error(code, err) and "100 inputs" in err and "784" in err and "Serving" not in out


@needs_web
def test_serve_refuses_a_port_in_use_in_one_line(capsys, random_model):
    from nndl.cli.serve import bind
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        code, out, err = run(capsys, "serve", random_model, "--port", port)
        assert one_line_error(code, err) and f"port {port}" in err and "--port" in err
    finally:
        taken.close()
    code, out, err = run(capsys, "serve", random_model, "--port", 70000)
    assert code == 2 and "65535" in err


def test_serve_without_the_web_extra_says_what_to_install(tmp_path):
    """In a fresh interpreter where the web libraries cannot be imported: --help works, serve says what to do."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn', 'fastapi', 'multipart', 'python_multipart'):\n"
        "            raise ImportError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from nndl.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "sys.exit(main(['serve', sys.argv[1]]))\n")
    model = tmp_path / "net.npz"
    save(FeedforwardNetwork([784, 10], seed=0), model)
    r = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True, text=True, timeout=60,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr
    assert "serve" in r.stdout                              # nndl --help lists the command
    assert r.stderr.count("\n") == 1 and "pip install 'nndl[web]'" in r.stderr


def test_importing_nndl_and_the_serve_modules_does_not_import_the_web_framework():
    code = ("import sys, nndl, nndl.cli, nndl.cli.serve, nndl.digits.predict, nndl.digits.read, nndl.digits.prepare\n"
            "nndl.cli.build_parser()\n"
            "print(sorted(m for m in ('starlette', 'uvicorn', 'fastapi', 'multipart', 'python_multipart', 'torch',\n"
            "                         'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@needs_web
def test_serve_binds_to_localhost_says_how_to_expose_it_and_stops_on_ctrl_c(random_model):
    process = subprocess.Popen([sys.executable, "-m", "nndl", "serve", str(random_model), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=default_sigint)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        url = re.search(r"Open (http://127\.0\.0\.1:\d+/)", out)
        assert url, out + process.stderr.read() if process.poll() is not None else out
        assert "--host 0.0.0.0" in out and "no authentication" in out
        with urllib.request.urlopen(url.group(1) + "api/health", timeout=10) as r:
            assert json.load(r)["status"] == "ok"
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Stopped." in err and "Traceback" not in err


def test_the_url_printed_and_which_hosts_are_this_computer_only():
    from nndl.cli.serve import _is_loopback, _url
    assert _url("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert _url("0.0.0.0", 8000) == "http://127.0.0.1:8000/" and _url("::", 80) == "http://[::1]:80/"
    assert _url("192.168.1.20", 8080) == "http://192.168.1.20:8080/"
    assert all(_is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(_is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "example.org"))


# --- the page in a real browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_model(request, random_model):
    """The trained network when MNIST is here (so drawings read as digits), else the random one."""
    try:
        return request.getfixturevalue("trained")[0]
    except pytest.skip.Exception:
        return random_model


@pytest.fixture(scope="module")
def live_server(page_model):
    """The page served by uvicorn in a thread, on a free port of 127.0.0.1; yields its URL."""
    if WEB_MISSING:
        pytest.skip(WEB_MISSING)
    import uvicorn

    from nndl.cli.serve import bind
    from nndl.serve.app import create_app
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(page_model), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.common.exceptions import WebDriverException
    for path, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not os.path.exists(path):
            pytest.skip(f"{path} not found: the browser tests need Debian's {package} (apt-get install {package})")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    except WebDriverException as e:
        pytest.skip(f"headless Chromium could not be started: {e.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def open_page(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(url)
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def wait_for_answer(browser, element_id):
    """Wait until no request is pending or running and the answer in ``element_id`` is shown; returns its text."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(
        "return document.querySelector('section.result').getAttribute('aria-busy') === 'false' && "
        f"document.getElementById('{element_id}').textContent !== '–'"))
    assert not browser.find_element("id", "error").is_displayed(), browser.find_element("id", "error").text
    return browser.find_element("id", element_id).text


def draw(browser, element, strokes, pointer="mouse", move_ms=15):
    """Draw ``strokes`` (lists of (x, y) in CSS pixels from the element's centre) with a mouse, pen or finger,
    each move taking ``move_ms``."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    kind = {"mouse": interaction.POINTER_MOUSE, "pen": interaction.POINTER_PEN, "touch": interaction.POINTER_TOUCH}
    actions = ActionBuilder(browser, mouse=PointerInput(kind[pointer], pointer), duration=move_ms)
    for stroke in strokes:
        x, y = stroke[0]
        actions.pointer_action.move_to(element, x, y).pointer_down()
        for x, y in stroke[1:]:
            actions.pointer_action.move_to(element, x, y)
        actions.pointer_action.pointer_up()
    actions.perform()


def api(url, route, body, content_type="image/png"):
    request = urllib.request.Request(url + route, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def canvas_png(browser, element_id):
    data = browser.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png')")
    return base64.b64decode(data.split(",", 1)[1])


def shown_probabilities(browser):
    heights = browser.execute_script(
        "return [...document.querySelectorAll('#bars .fill')].map(e => parseFloat(e.style.height))")
    return np.array(heights) / 100


def shown_image(browser, element_id="seen"):
    pixels = browser.execute_script(
        f"const c = document.getElementById('{element_id}');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)")
    return np.array(pixels).reshape(28, 28, 4)[:, :, 0]


def save_screenshot(browser, name):
    """The page as the test sees it, as NAME.png in the directory $NNDL_SCREENSHOTS names (none without it).

    Written atomically, so the documentation never shows half a picture. CI sets
    NNDL_SCREENSHOTS=docs/_static/screenshots: the page of nndl serve in the docs is this one.
    """
    directory = os.environ.get("NNDL_SCREENSHOTS")
    if not directory:
        return
    from nndl.files.atomic import atomic_write_bytes
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    Path(directory).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(directory) / f"{name}.png", png)


def assert_no_console_errors(browser):
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


COUNT_REQUESTS = """
window.requests = {started: [], running: 0, mostAtOnce: 0};
const originalFetch = window.fetch;
window.fetch = async (...args) => {
  const r = window.requests;
  r.started.push(performance.now());
  r.running += 1;
  r.mostAtOnce = Math.max(r.mostAtOnce, r.running);
  try { return await originalFetch(...args); } finally { r.running -= 1; }
};
"""


def test_browser_draw_a_digit_see_the_prediction_bars_and_image_then_clear(browser, live_server, page_model):
    open_page(browser, live_server)
    pad = browser.find_element("id", "pad")
    assert pad.size["width"] == 280 and pad.get_attribute("aria-label").startswith("Drawing area")
    browser.execute_script(COUNT_REQUESTS)
    draw(browser, pad, [[(0, y) for y in range(-90, 91, 8)]], move_ms=45)        # a stroke of about a second
    digit = wait_for_answer(browser, "digit")
    assert re.fullmatch(r"[0-9]", digit)
    # The answer updated while drawing: several requests, throttled (at least 150 ms apart, counted between the
    # requests themselves, instead of one per move every 45 ms), never two at once. 150 ms is a lower bound the
    # page's timers guarantee however loaded the machine is; 5 ms allows for timer and clock rounding.
    requests = browser.execute_script("return window.requests")
    started = np.array(requests["started"])
    assert len(started) >= 3 and requests["mostAtOnce"] == 1
    assert np.diff(started).min() >= 145
    # The page shows exactly what the API answers for the same drawing.
    answer = api(live_server, "api/predict", canvas_png(browser, "pad"))
    assert digit == str(answer["digit"])
    assert np.allclose(shown_probabilities(browser), answer["probabilities"], atol=1e-3)
    assert np.array_equal(shown_image(browser), np.array(answer["image"]))
    bars = browser.find_elements("css selector", "#bars li")
    assert len(bars) == 10 and bars[int(digit)].get_attribute("class") == "top"
    assert bars[int(digit)].get_attribute("aria-label").startswith(f"{digit}: ")
    assert "sure" in browser.find_element("id", "confidence").text
    if page_model.name == "trained.npz":
        assert digit == "1"
    save_screenshot(browser, "serve")
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "digit").text == "–"
    assert shown_probabilities(browser).sum() == 0
    assert_no_console_errors(browser)


def test_browser_upload_an_image_file(browser, live_server, tmp_path):
    from PIL import Image, ImageDraw
    picture = Image.new("RGB", (160, 200), "white")               # a seven, in blue ink, on white
    ImageDraw.Draw(picture).line([(30, 30), (130, 30), (70, 175)], fill=(20, 40, 160), width=14)
    path = tmp_path / "seven.png"
    picture.save(path)
    open_page(browser, live_server)
    browser.find_element("id", "file").send_keys(str(path))
    digit = wait_for_answer(browser, "digit")
    answer = api(live_server, "api/predict", path.read_bytes())
    assert digit == str(answer["digit"])
    assert np.allclose(shown_probabilities(browser), answer["probabilities"], atol=1e-3)
    assert np.array_equal(shown_image(browser), np.array(answer["image"]))
    assert browser.find_element("id", "upload-view").is_displayed()
    assert not browser.find_element("id", "pad").is_displayed()
    assert browser.execute_script("return document.getElementById('upload-preview').naturalWidth") == 160
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "pad").is_displayed() and browser.find_element("id", "digit").text == "–"
    assert_no_console_errors(browser)


def test_browser_read_a_whole_number_written_with_pen_and_finger(browser, live_server, page_model):
    open_page(browser, live_server)
    browser.find_element("css selector", 'input[name="mode"][value="number"]').click()
    pad = browser.find_element("id", "pad")
    assert pad.get_attribute("width") == "840" and pad.size["width"] > 600
    assert browser.find_element("id", "number-result").is_displayed()
    assert not browser.find_element("id", "digit-result").is_displayed()
    draw(browser, pad, [[(-200, y) for y in range(-90, 91, 15)]], pointer="pen")
    draw(browser, pad, [[(150, y) for y in range(-90, 91, 15)]], pointer="touch")
    text = wait_for_answer(browser, "number")
    answer = api(live_server, "api/read", canvas_png(browser, "pad"))
    assert text == answer["text"] and len(text) == 2
    figures = browser.find_elements("css selector", "#number-digits figure")
    assert len(figures) == 2
    boxes = browser.execute_script(
        "const c = document.getElementById('pad-boxes');"
        "const alpha = c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((v, i) => i % 4 == 3);"
        "return alpha.filter(v => v > 0).length")
    assert boxes > 100                                       # the two boxes are outlined over the drawing
    if page_model.name == "trained.npz":
        assert text == "11"
    assert_no_console_errors(browser)


# --- hardening: what a client may cost the server, and what it may learn ------------------------------------------


def wavy_strokes(n=25, length=160, height=70):
    """PNG bytes of ``n`` separate wavy strokes side by side, each much wider than tall: every one is cut in
    many places, so reading it is slow (seconds)."""
    from PIL import Image, ImageDraw
    image = Image.new("L", (n * (length + 10) + 20, height), 255)
    draw = ImageDraw.Draw(image)
    for k in range(n):
        x0 = 10 + k * (length + 10)
        xs = np.linspace(x0, x0 + length, 60)
        draw.line([(float(x), float(height / 2 + 20 * np.sin(0.15 * x + k))) for x in xs], fill=0, width=3)
    return png(image)


class Serving:
    """``app`` served by uvicorn (``server_config``) in a thread on a free port of 127.0.0.1; ``url``, ``port``."""

    def __init__(self, app, **settings):
        import uvicorn

        from nndl.cli.serve import bind
        from nndl.serve.app import server_config
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"log_level": "warning", "log_config": None, **settings}
        self.server = uvicorn.Server(server_config(app, **settings))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def http(url, route, body=None, content_type="image/png", timeout=60):
    """(status, JSON answer) of GET (no body) or POST ``route``."""
    import urllib.error
    request = urllib.request.Request(url + route, data=body, method="GET" if body is None else "POST",
                                     headers={} if body is None else {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.load(e)


def create(model, **settings):
    from nndl.serve.app import create_app
    return create_app(model, **settings)


@needs_web
def test_health_names_the_model_file_but_not_its_directories(random_model):
    with client_for(random_model) as c:
        model = c.get("/api/health").json()["model"]
    assert model.endswith("from random.npz") and str(random_model.parent) not in model


@needs_web
def test_a_read_is_bounded_in_pieces_and_in_time(random_model):
    from nndl.digits.read import MAX_SEGMENTS
    with client_for(random_model) as c:
        r = c.post("/api/read", content=wavy_strokes(100), headers={"Content-Type": "image/png"})
        assert r.status_code == 422 and f"more than the {MAX_SEGMENTS}" in r.json()["error"], r.text
    with client_for(random_model, read_seconds=0.05) as c:
        r = c.post("/api/read", content=wavy_strokes(25), headers={"Content-Type": "image/png"})
        assert r.status_code == 422 and "took more than the 0.05 s allowed" in r.json()["error"], r.text
        r = c.post("/api/read", content=png(drawn_one()), headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and r.json()["text"]


@needs_web
def test_a_prediction_is_answered_while_six_slow_reads_run_and_extra_reads_get_503(random_model, caplog):
    slow = wavy_strokes(25)
    app = create(random_model, workers=2, read_workers=1, read_queue=2, read_seconds=120)
    done: dict[str, float] = {}
    answers: list[tuple[int, dict]] = []
    with Serving(app) as server:
        def read(k):
            answers.append(http(server.url, "/api/read", slow, timeout=300))
            done[f"read{k}"] = time.monotonic()

        readers = [threading.Thread(target=read, args=(k,)) for k in range(6)]
        for t in readers:
            t.start()
        deadline = time.monotonic() + 60
        while app.state.server.reads < 3 and time.monotonic() < deadline:     # 1 reading, 2 waiting
            time.sleep(0.01)
        status, answer = http(server.url, "/api/predict", png(drawn_one()), timeout=120)
        done["predict"] = time.monotonic()
        health = http(server.url, "/api/health", timeout=120)
        for t in readers:
            t.join(timeout=300)
    assert status == 200 and answer["digit"] is not None and health[0] == 200
    statuses = [s for s, _ in answers]
    assert set(statuses) == {200, 503} and statuses.count(200) >= 3, answers     # 3 at once; a late one may fit
    assert all("busy" in a["error"] for s, a in answers if s == 503)
    assert done["predict"] < max(done[k] for k in done if k.startswith("read")), done   # not queued behind them
    assert "Traceback" not in caplog.text


@needs_web
def test_a_client_that_disconnects_mid_upload_leaves_one_line_in_the_log(random_model, caplog):
    import logging
    import socket
    caplog.set_level(logging.INFO)
    with Serving(create(random_model)) as server:
        for route in ("/api/predict", "/api/read"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                          f"Content-Length: 100000\r\n\r\n".encode() + png(drawn_one())[:500])
                time.sleep(0.2)
            deadline = time.monotonic() + 30
            while f"upload to {route}" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
        assert http(server.url, "/api/health")[0] == 200
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert [r.name for r in lines] == ["nndl.serve", "nndl.serve"], caplog.text
    assert not any(r.exc_info for r in caplog.records), caplog.text
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text


def closed_without_answer(sock):
    """Whether the server closes ``sock`` (waiting up to the socket's timeout) without sending anything."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received == b""


@needs_web
def test_half_open_connections_are_closed_and_health_keeps_answering(random_model):
    import socket
    sockets = []
    with Serving(create(random_model), header_seconds=1) as server:
        try:
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")   # never finished
                sockets.append(s)
            status, answer = http(server.url, "/api/health", timeout=30)
            assert status == 200 and answer["status"] == "ok"
            for s in sockets:                              # each is closed by the server: EOF, no answer
                assert closed_without_answer(s)
            # The same after a first request on a keep-alive connection.
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                first = b""
                while not first.endswith(b"}"):                # the whole answer: headers and JSON
                    first += s.recv(65536)
                assert first.startswith(b"HTTP/1.1 200")
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                assert closed_without_answer(s)
        finally:
            for s in sockets:
                s.close()


@needs_web
def test_no_path_or_traceback_reaches_a_client_or_the_log_for_a_clients_mistake(random_model, caplog, tmp_path):
    import logging
    import socket
    caplog.set_level(logging.INFO)
    from PIL import Image
    bomb = png(Image.new("1", (7000, 7000), 1))
    bodies = [(b"", "image/png"), (b"not an image", "image/png"), (b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"),
              (bomb, "image/png"), (b"{}", "application/json"), (b"--x\r\n", "multipart/form-data; boundary=x"),
              (wavy_strokes(100), "image/png; wavy")]         # a picture, not a number: refused by /api/read
    texts = []
    with Serving(create(random_model, max_upload_bytes=100_000)) as server:
        for route in ("/api/predict", "/api/read", "/api/read?method=../../etc/passwd"):
            for body, kind in bodies:
                status, answer = http(server.url, route, body, kind)
                assert status < 500 and (status >= 400 or "wavy" in kind), (route, body[:20], status, answer)
                texts.append(json.dumps(answer))
        for route in ("/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/app.py", "/nowhere", "/static/x"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 404") or answer.startswith(b"HTTP/1.1 400"), answer[:200]
            texts.append(answer.decode("latin-1"))
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:        # not HTTP at all
            s.sendall(b"\x16\x03\x01 hello\r\n\r\n")
            texts.append(s.recv(65536).decode("latin-1"))
        texts.append(json.dumps(http(server.url, "/api/health")[1]))
    shown = "\n".join(texts) + caplog.text
    for secret in (str(ROOT), str(random_model.parent), "/tmp/", "site-packages", "Traceback", "File \""):
        assert secret not in shown, (secret, shown[:3000])
    assert not any(r.exc_info for r in caplog.records), caplog.text
