"""Measure nndl serve: predict latency over HTTP on localhost, and a bounded load test.

The server is the real command, ``python -m nndl serve MODEL --port 0``, in
its own process; this script is only a client. What is measured:

latency
    ``--requests`` (default 300) POST /api/predict one after another on one
    keep-alive connection, after ``--warmup`` (default 50) untimed ones:
    p50, p95, p99 and max in milliseconds, from sending the request to
    having read the whole answer. Target: p50 <= 20 ms.
load
    ``--load`` (default 2,000) requests from ``--clients`` (default 8)
    threads at once, each with its own keep-alive connection: errors (any
    answer but 200 with a digit, or a failed connection; 0 expected),
    requests per second, p50 and p95 under load.
memory
    The server's resident memory (VmRSS from /proc/PID/status; Linux) after
    the warm-up, after the latency run, after the load test and after a
    second identical load round. Memory that does not grow: the two load
    rounds end within ``--rss-tolerance`` MB (default 10) of each other.

The image is what the page sends: a 280x280 PNG of black ink on white. By
default it is MNIST test digit 0 enlarged to about 200 pixels (a seven) when
the MNIST files are found, else a stroke drawn with Pillow; ``--image``
sends a file of your own. The model is ``--model``, or by default a
[784, 30, 10] network trained for one epoch on 5,000 MNIST images (random
weights without MNIST; the time is the image's decoding and preparation and
barely depends on the weights).

    python benchmarks/bench_serve.py
    nice -n 10 python benchmarks/bench_serve.py --json serve.json
    python benchmarks/bench_serve.py --model net.json --image digit.png --clients 16 --load 5000
"""

import argparse
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))           # run from a checkout without installing

from machine import base_context, cpu_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from nndl.engine.feedforward import FeedforwardNetwork  # noqa: E402
from nndl.engine.modelio import save  # noqa: E402

TARGET_P50_MS = 20.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file to serve (default: train a small one, or random weights)")
    parser.add_argument("--image", help="image file to send (default: a 280x280 canvas-like PNG of a digit)")
    parser.add_argument("--data", help="directory of the MNIST files (default: nndl's search, no download)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests first (default 50)")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests timed (default 300)")
    parser.add_argument("--load", type=int, default=2000, help="requests in the load test (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the load test (default 8)")
    parser.add_argument("--rss-tolerance", type=float, default=10.0,
                        help="MB the second load round may end above the first (default 10)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if min(args.requests, args.load, args.clients) < 1 or args.warmup < 0:
        parser.error("--requests, --load and --clients must be at least 1, --warmup at least 0")
    return args


# --- the model and the image ------------------------------------------------------------------------


def mnist(directory):
    from nndl.data.mnist import load_mnist
    from nndl.errors import NndlError
    try:
        return load_mnist(directory, download=False, progress=False)
    except NndlError:
        return None


def default_model(data, directory):
    """(path, description): a small trained network, or random weights when there is no MNIST."""
    net = FeedforwardNetwork([784, 30, 10], seed=0)
    if data is not None:
        from nndl.training import train
        train(net, (data.training.images[:5000], data.training.labels[:5000]), epochs=1, mini_batch_size=10,
              eta=0.5, seed=0)
        description = "[784, 30, 10] trained 1 epoch on 5,000 MNIST images"
    else:
        description = "[784, 30, 10] random weights (no MNIST found)"
    path = Path(directory) / "bench-serve.npz"
    save(net, path)
    return path, description


def default_image(data):
    """(PNG bytes, description): a digit as the page would send it, black ink on a white 280x280 canvas."""
    from PIL import Image, ImageDraw
    if data is not None:
        ink = Image.fromarray(np.round(data.test.images[0].reshape(28, 28) * 255).astype(np.uint8))
        canvas = Image.new("L", (280, 280), 0)
        canvas.paste(ink.resize((200, 200), Image.BILINEAR), (40, 40))
        canvas = Image.eval(canvas, lambda v: 255 - v)
        description = f"MNIST test digit 0 (a {data.test.labels[0]}) on a 280x280 canvas"
    else:
        canvas = Image.new("L", (280, 280), 255)
        ImageDraw.Draw(canvas).line([(70, 60), (210, 60), (120, 230)], fill=0, width=20)
        description = "a drawn 7 on a 280x280 canvas"
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue(), description


# --- the server ------------------------------------------------------------------------------------


def start_server(model):
    """(process, host, port) of ``python -m nndl serve MODEL --port 0``, once it is listening."""
    process = subprocess.Popen([sys.executable, "-m", "nndl", "serve", str(model), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    found = re.search(r"Open http://([0-9.]+):(\d+)/", "".join(lines))
    if not found:
        process.kill()
        raise SystemExit("nndl serve did not start:\n" + "".join(lines) + process.stderr.read())
    return process, found.group(1), int(found.group(2))


def stop_server(process):
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def rss_mb(pid):
    """Resident memory of process ``pid`` in MB, or None where /proc is not available."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


# --- the client ------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection posting the image to /api/predict."""

    def __init__(self, host, port, body):
        self.host, self.port, self.body = host, port, body
        self.connection = None

    def predict(self):
        """Seconds the request took; raises on a failed connection or an answer that is not a prediction."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        started = time.perf_counter()
        try:
            self.connection.request("POST", "/api/predict", body=self.body, headers={"Content-Type": "image/png"})
            response = self.connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - started
        if response.status != 200 or "digit" not in json.loads(answer):
            raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
        return elapsed

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def percentiles(seconds):
    ms = np.array(seconds) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "mean": float(ms.mean())}


def load_test(host, port, body, total, clients):
    """``total`` requests shared among ``clients`` threads: latencies, errors and the wall time."""
    shares = [total // clients + (i < total % clients) for i in range(clients)]
    latencies, errors, lock = [], [], threading.Lock()

    def work(n):
        client = Client(host, port, body)
        mine, failures = [], []
        for _ in range(n):
            try:
                mine.append(client.predict())
            except Exception as e:              # counted and reported, never fatal: that is the measurement
                failures.append(f"{type(e).__name__}: {e}")
        client.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failures)

    threads = [threading.Thread(target=work, args=(n,)) for n in shares]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    context = base_context()
    print(f"nndl serve benchmark: Python {context['python']}, {context['platform']}")
    print(cpu_line(context))
    data = mnist(args.data)
    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            model, model_description = Path(args.model), args.model
        else:
            model, model_description = default_model(data, scratch)
        if args.image:
            body, image_description = Path(args.image).read_bytes(), args.image
        else:
            body, image_description = default_image(data)
        print(f"model: {model_description}")
        print(f"image: {image_description}, {len(body):,} bytes of PNG")
        process, host, port = start_server(model)
        try:
            result = run(args, process.pid, host, port, body)
        finally:
            stop_server(process)
    result.update(context=context, model=model_description, image=image_description, image_bytes=len(body))
    report(result, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if result["pass"] else 1


def run(args, pid, host, port, body):
    rss = {"started": rss_mb(pid)}
    client = Client(host, port, body)
    for _ in range(args.warmup):
        client.predict()
    rss["after warm-up"] = rss_mb(pid)
    sequential = [client.predict() for _ in range(args.requests)]
    client.close()
    rss["after latency run"] = rss_mb(pid)
    rounds = []
    for name in ("load round 1", "load round 2"):
        latencies, errors, wall = load_test(host, port, body, args.load, args.clients)
        rss[f"after {name}"] = rss_mb(pid)
        rounds.append({"requests": args.load, "clients": args.clients, "errors": len(errors),
                       "error_examples": sorted(set(errors))[:5], "seconds": wall,
                       "requests_per_second": len(latencies) / wall, **percentiles(latencies or [float("nan")])})
    latency = percentiles(sequential)
    growth = None
    if rss["after load round 1"] is not None:
        growth = rss["after load round 2"] - rss["after load round 1"]
    checks = {
        f"predict latency p50 <= {TARGET_P50_MS:g} ms": latency["p50"] <= TARGET_P50_MS,
        "load test: 0 errors": all(r["errors"] == 0 for r in rounds),
        f"memory does not grow (round 2 - round 1 <= {args.rss_tolerance:g} MB)":
            growth is None or growth <= args.rss_tolerance,
    }
    return {"latency_ms": latency, "sequential_requests": args.requests, "warmup": args.warmup,
            "load": rounds, "rss_mb": rss, "rss_growth_mb": growth, "checks": checks,
            "pass": all(checks.values())}


def report(result, args):
    latency = result["latency_ms"]
    print(f"\nlatency, {result['sequential_requests']} sequential requests on one connection "
          f"(after {result['warmup']} warm-up):")
    print(f"  p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms, "
          f"max {latency['max']:.1f} ms, mean {latency['mean']:.1f} ms")
    for i, r in enumerate(result["load"], 1):
        print(f"load round {i}: {r['requests']:,} requests from {r['clients']} clients in {r['seconds']:.1f} s "
              f"({r['requests_per_second']:.0f} requests/s): {r['errors']} errors; "
              f"p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, max {r['max']:.1f} ms")
        for example in r["error_examples"]:
            print(f"    e.g. {example}")
    rss = result["rss_mb"]
    if rss["started"] is None:
        print("server memory: not measured (no /proc)")
    else:
        print("server memory (RSS): " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in rss.items()))
        print(f"  growth from load round 1 to round 2: {result['rss_growth_mb']:+.1f} MB")
    for check, passed in result["checks"].items():
        print(f"{'PASS' if passed else 'FAIL'}: {check}")


if __name__ == "__main__":
    sys.exit(main())
