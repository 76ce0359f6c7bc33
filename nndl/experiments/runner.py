"""Running registered experiments: seeds, parallel processes, resumable results, the report.

For an output directory DIR, :func:`reproduce` writes

* ``DIR/runs/ID-sSEED.json`` -- one seed's result, as soon as it finishes
  (``ID-once.json`` for a deterministic experiment);
* ``DIR/ID.json`` -- every seed's result, the median and spread over seeds,
  and whether it reproduces the book, once all of its seeds are done;
* ``DIR/ID.png`` -- its figure, drawn from ``ID.json`` (``nndl plot DIR/ID.json``
  draws it again without training);
* ``DIR/REPORT.md`` -- the table of every experiment in DIR, rewritten after
  each experiment finishes.

Every file is read back through one check (:func:`check_run` for a seed's
result, :func:`check_result` for ``ID.json``): its format and version, the id,
seed, quick and configuration it claims, the types of its fields, finite
numbers, and (``ID.json``) a median and spread that are those of its runs. A
file that fails it is said in one line ("runs/ID-s2.json is damaged (value:
expected a number, got null): running that seed again") and that seed runs
again, or the seeds are combined again; REPORT.md leaves out a damaged
``ID.json`` of an experiment not being run. Seeds are whole numbers
0 ... 2**32 - 1, each given once.

Every file is written atomically; the temporary files of a writer killed
outright (``kill -9``) are removed by the next command. A seed whose result is already in
``DIR/runs`` with the same configuration is not run again (unless ``force``),
so an interrupted command, run again, picks up where it stopped. Quick runs
and full runs keep separate results: a quick result never stands in for a
full one.

With ``epochs`` (``--epochs N``) the experiments that train one network train
it for N epochs instead of the book's -- the chapter 6 rungs on a CPU, say.
Such a run is kept apart, as ``DIR/ID-eN.json``, ``DIR/ID-eN.png`` and
``DIR/runs/ID-sS-eN.json``, and its report row says it was not compared
with the book (REPORT.md shows it only while the book's own run is missing).
Chapter 6 checkpoints carry over: a later run for more epochs, or the book's
run, goes on from where the shorter one stopped.

With ``jobs > 1`` the (experiment, seed) runs go to that many worker processes,
each limited to one CPU thread (independent runs in parallel use a multi-core
machine better than one run using every core).
"""

import json
import math
import os
import platform
import re
import statistics
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from nndl.errors import ConfigError, FileFormatError, MissingDependencyError, NndlError
from nndl.experiments.registry import Context, config_dict, experiments, format_value, get
from nndl.files.atomic import atomic_write_text
from nndl.files.header import brief, parse_json

__all__ = ["reproduce", "load_result", "write_report", "check_run", "check_result", "check_seeds", "Outcome",
           "FORMAT", "VERSION", "RUN_FORMAT", "RUN_VERSION"]

FORMAT = "nndl-experiment"
VERSION = 1
#: A seed's result, DIR/runs/ID-sS.json. Files written before it carried a format (nndl 0.2) have none and are
#: read as version 1.
RUN_FORMAT = "nndl-experiment-run"
RUN_VERSION = 1
#: A result file is a few MB at most (every epoch of a few runs); anything much bigger is not one.
_MAX_BYTES = 256 * 2**20


class Outcome:
    """What :func:`reproduce` did: ids finished, skipped (already done), and failed (id -> message)."""

    def __init__(self):
        self.finished, self.skipped, self.failed = [], [], {}

    @property
    def ok(self):
        return not self.failed


#: Seeds go to NumPy's and PyTorch's generators: whole numbers 0 ... 2**32 - 1.
MAX_SEED = 2**32 - 1


def check_seeds(seeds):
    """The seeds as a list, checked: at least one, each a whole number 0 ... MAX_SEED, none twice (ConfigError)."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ConfigError(f"the seeds must be a list of whole numbers, got {brief(seeds)}")
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("give at least one seed")
    for seed in seeds:
        if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"a seed is a whole number from 0 to {MAX_SEED}, got {brief(seed)}")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"each seed once: {', '.join(map(str, twice))} given more than once")
    return seeds


def _seeds(experiment, seeds):
    return list(seeds) if experiment.seeded else [None]


def _reduced(experiment, quick, epochs):
    """``epochs`` when it changes the experiment's own number of epochs, else None."""
    return None if epochs is None or epochs == experiment.book_epochs(quick) else epochs


def _stem(experiment, epochs=None):
    """The file name of a result: "ID", or "ID-eN" for a run of N epochs instead of the book's."""
    return experiment.id if epochs is None else f"{experiment.id}-e{epochs}"


def _part_path(out, experiment, seed, epochs=None):
    seed_part = "once" if seed is None else f"s{seed}"
    return Path(out) / "runs" / f"{experiment.id}-{seed_part}{'' if epochs is None else f'-e{epochs}'}.json"


def _read_json(path, source=None):
    """The JSON in ``path`` (named ``source`` in messages); FileFormatError when it is not JSON nndl wrote,
    FileNotFoundError when there is no such file."""
    path = Path(path)
    source = str(path) if source is None else source
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileFormatError(f"{source} cannot be read ({e.strerror or e})") from None
    if len(raw) > _MAX_BYTES:
        raise FileFormatError(f"{source} is larger than {_MAX_BYTES // 2**20} MB: not a result of nndl reproduce")
    return parse_json(raw, source)


# ---------------------------------------------------------------------------- checking what is read back

def _bad(source, what):
    raise FileFormatError(f"{source} is damaged ({what})")


def _got(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return brief(value) if isinstance(value, (int, float, str)) else f"a {type(value).__name__}"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _expect(source, data, key, kind, test, optional=False):
    """Check ``data[key]`` with ``test`` (``kind`` says what it should be); a missing key only when optional."""
    if key not in data:
        if optional:
            return
        _bad(source, f"no {key}")
    if not test(data[key]):
        _bad(source, f"{key}: expected {kind}, got {_got(data[key])}")


def _check_header(data, kind, newest, source, optional=False):
    if not isinstance(data, dict):
        _bad(source, f"expected a JSON object, got {_got(data)}")
    if optional and "format" not in data and "version" not in data:
        return
    if data.get("format") != kind:
        _bad(source, f"format: expected {kind!r}, got {_got(data.get('format'))}")
    version = data.get("version")
    if not _is_int(version) or version < 1:
        _bad(source, f"version: expected a whole number >= 1, got {_got(version)}")
    if version > newest:
        raise FileFormatError(f"{source} was written by a newer nndl (format version {version}); upgrade nndl")


def _check_outcome(data, experiment, source):
    """The fields every seed's result has, in ID.json's runs and in runs/ID-sS.json."""
    _expect(source, data, "seconds", "a number of seconds", lambda v: _is_number(v) and v >= 0)
    if experiment is not None and experiment.target is not None:
        _expect(source, data, "value", "a number", _is_number)
    else:
        _expect(source, data, "value", "a number or null", lambda v: v is None or _is_number(v), optional=True)
    _expect(source, data, "shown", "true, false or null", lambda v: v is None or isinstance(v, bool), optional=True)
    _expect(source, data, "summary", "text", lambda v: isinstance(v, str), optional=True)
    if experiment is not None and experiment.target is None and data.get("value") is None \
            and data.get("shown") is None and not data.get("summary"):
        _bad(source, "no value, shown or summary: nothing it found")
    if "error" in data:
        _bad(source, "it records a failed run")
    history = data.get("history")
    if isinstance(history, dict) and "format" in history:
        from nndl.training.history import History
        History.from_dict(history, f"{source}: its history")


def check_run(data, experiment, seed, quick, epochs=None, source="a seed's result"):
    """Check a seed's result read back from ``runs/ID-sS.json``: written by this nndl, for ``experiment``
    (an Experiment), ``seed`` (None: a deterministic experiment's one run), ``quick`` and ``epochs``.

    Raises FileFormatError saying what is wrong ("... is damaged (value: expected a number, got null)"), or
    ConfigError when the file is sound but for another configuration (a result of an older version of the
    experiment): either way the seed must run again.
    """
    _check_header(data, RUN_FORMAT, RUN_VERSION, source, optional=True)
    _expect(source, data, "id", repr(experiment.id), lambda v: v == experiment.id)
    _expect(source, data, "seed", "null" if seed is None else f"seed {seed}",
            lambda v: v is None if seed is None else (_is_int(v) and v == seed))
    _expect(source, data, "quick", "true or false", lambda v: isinstance(v, bool))
    _expect(source, data, "config", "a JSON object", lambda v: isinstance(v, dict))
    _check_outcome(data, experiment, source)
    if data["quick"] is not quick:
        raise ConfigError(f"{source} is the result of a {'full' if quick else 'quick'} run, not of a "
                          f"{'quick' if quick else 'full'} one")
    if data["config"] != config_dict(experiment.settings(quick, epochs)):
        raise ConfigError(f"{source} was made with another configuration of {experiment.id}")
    return data


def _check_run_at(data, source, *, experiment, seed, quick, epochs):
    return check_run(data, experiment, seed, quick, epochs, source)


def check_result(data, source="a result", experiment=None):
    """Check an ``ID.json`` read back (format, version, the id it claims, every run, the median of their values).

    Returns the data; FileFormatError says what is wrong.
    """
    _check_header(data, FORMAT, VERSION, source)
    _expect(source, data, "id", "an experiment id", lambda v: isinstance(v, str) and v)
    if experiment is not None and data["id"] != experiment.id:
        _bad(source, f"id: expected {experiment.id!r}, got {_got(data['id'])}")
    text = ("a text", lambda v: isinstance(v, str))
    for key in ("title", "command", "unit"):
        _expect(source, data, key, *text)
    _expect(source, data, "book", "a text or null", lambda v: v is None or isinstance(v, str), optional=True)
    _expect(source, data, "quick", "true or false", lambda v: isinstance(v, bool))
    for key in ("target", "tolerance"):
        _expect(source, data, key, "a number or null", lambda v: v is None or _is_number(v), optional=True)
    for key in ("epochs", "book_epochs"):
        _expect(source, data, key, "a number of epochs or null", lambda v: v is None or (_is_int(v) and v >= 1),
                optional=True)
    for key in ("within", "shown"):
        _expect(source, data, key, "true, false or null", lambda v: v is None or isinstance(v, bool), optional=True)
    _expect(source, data, "median", "a number or null", lambda v: v is None or _is_number(v))
    _expect(source, data, "spread", "two numbers or null",
            lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(map(_is_number, v))), optional=True)
    _expect(source, data, "runs", "a list of runs", lambda v: isinstance(v, list) and v
            and all(isinstance(r, dict) for r in v))
    _expect(source, data, "seeds", "the runs' seeds", lambda v: isinstance(v, list)
            and v == [r.get("seed") for r in data["runs"]] and all(s is None or _is_int(s) for s in v)
            and len(set(v)) == len(v))
    for k, run in enumerate(data["runs"]):
        _check_outcome(run, experiment, f"{source}: run {k + 1}")
    values = [r["value"] for r in data["runs"] if r.get("value") is not None]
    median = statistics.median(values) if values else None
    if (median is None) != (data["median"] is None) or (median is not None and median != data["median"]):
        _bad(source, f"median: {_got(data['median'])} is not the median of its runs' values ({_got(median)})")
    if values and data.get("spread") is not None and data["spread"] != [min(values), max(values)]:
        _bad(source, "spread: not the lowest and highest of its runs' values")
    return data


def _read_checked(path, check, echo, again):
    """``check(data, source)`` of the JSON at ``path``; None (said in one line, ending ``again``) when it is
    missing or damaged."""
    source = _shown(path)
    try:
        return check(_read_json(path, source), source)
    except FileNotFoundError:
        pass
    except FileFormatError as e:
        echo(f"{e}: {again}")
    except ConfigError as e:
        echo(f"{e}: {again}")
    return None


def _shown(path):
    """A result's path as messages name it: "runs/ID-s1.json" or "ID.json" (relative to the output directory)."""
    path = Path(path)
    return f"runs/{path.name}" if path.parent.name == "runs" else path.name


def _check_needs(chosen, data_dir):
    """Refuse, before any work, what cannot run here: missing libraries or data."""
    import importlib.util
    missing: dict[str, list[str]] = {}             # install command -> ids of the experiments that need it
    for experiment in chosen:
        for need, module, install in (("torch", "torch", "pip install 'nndl[deep]'"),
                                      ("sklearn", "sklearn", "pip install scikit-learn")):
            if need in experiment.needs and importlib.util.find_spec(module) is None:
                missing.setdefault(install, []).append(experiment.id)
    if missing:
        raise MissingDependencyError("; ".join(f"{', '.join(ids)} need(s) a library that is not installed: {install}"
                                               for install, ids in missing.items()))
    if any("mnist" in e.needs for e in chosen):
        from nndl.data.mnist import find_mnist
        try:
            find_mnist(data_dir)
        except NndlError:
            from nndl.data.mnist import load_mnist
            load_mnist(data_dir, progress=None)         # downloads it, or says plainly where it looked


def _limit_threads(threads):
    """In a worker process: one thread for BLAS (and PyTorch, if a run imports it)."""
    if threads is None:
        return
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits
    global _LIMITS
    _LIMITS = threadpool_limits(threads)


_LIMITS = None


def run_one(experiment_id, seed, quick, data_dir=None, threads=None, work_dir=None, epochs=None, device=None,
            cuda_graph=False):
    """One seed of one experiment (in this process): its result dict, with ``seed`` and ``seconds`` added.

    ``epochs``: train for this many epochs instead of the configuration's (see the module docstring).
    ``device``: where the PyTorch runs train (``Context.device``; None: the CPU).
    ``cuda_graph``: replay their training steps from CUDA graphs (``Context.cuda_graph``).

    An error becomes ``{"error": message}`` so that the other runs go on; a
    problem of the user's (an NndlError) is one line, anything else keeps its
    traceback.
    """
    experiment = get(experiment_id)
    name = f"{experiment_id}{'' if seed is None else f'-s{seed}'}{'-quick' if quick else ''}"
    context = Context(seed=seed, quick=quick, data_dir=data_dir, threads=threads, name=name, work_dir=work_dir,
                      device=device, cuda_graph=cuda_graph)
    start = time.perf_counter()
    try:
        result = experiment.run(experiment.settings(quick, epochs), context)
    except NndlError as e:
        return {"seed": seed, "error": str(e)}
    except Exception:
        return {"seed": seed, "error": traceback.format_exc()}
    if not isinstance(result, dict):
        return {"seed": seed, "error": f"{experiment_id}'s run returned {type(result).__name__}, not a dict"}
    return {**result, "seed": seed, "seconds": time.perf_counter() - start}


def run_together(experiment_id, seeds, quick, data_dir=None, threads=None, work_dir=None, epochs=None,
                 device=None, cuda_graph=False):
    """Several seeds of one experiment at once (its ``run_many``): a list of result dicts, one per seed.

    An error fails every seed of the group, each with the message.
    """
    experiment = get(experiment_id)
    contexts = [Context(seed=seed, quick=quick, data_dir=data_dir, threads=threads, work_dir=work_dir,
                        name=f"{experiment_id}-s{seed}{'-quick' if quick else ''}", device=device,
                        cuda_graph=cuda_graph) for seed in seeds]
    start = time.perf_counter()
    try:
        results = experiment.run_many(experiment.settings(quick, epochs), contexts)
    except NndlError as e:
        return [{"seed": seed, "error": str(e)} for seed in seeds]
    except Exception:
        return [{"seed": seed, "error": traceback.format_exc()} for seed in seeds]
    seconds = (time.perf_counter() - start) / len(seeds)       # shared: each seed's part of the time
    return [{**result, "seed": seed, "seconds": seconds} for seed, result in zip(seeds, results)]


def _worker_init(threads):
    _limit_threads(threads)


def _combine(experiment, quick, runs, seeds, epochs=None):
    """The ID.json document: every run, the median and spread, and the verdict (none for a run of fewer epochs)."""
    values = [r["value"] for r in runs if r.get("value") is not None]
    shown = [r["shown"] for r in runs if r.get("shown") is not None]
    median = statistics.median(values) if values else None
    all_shown = all(shown) if shown else None
    seed_words = "" if not experiment.seeded else " --seeds " + " ".join(map(str, seeds))
    return {
        "format": FORMAT, "version": VERSION,
        "id": experiment.id, "title": experiment.title, "book": experiment.book,
        "target": experiment.target, "tolerance": experiment.tolerance, "better": experiment.better,
        "unit": experiment.unit, "quick": quick, "config": config_dict(experiment.settings(quick, epochs)),
        "epochs": epochs, "book_epochs": experiment.book_epochs(quick) if epochs is not None else None,
        "seeds": [r["seed"] for r in runs], "runs": runs,
        "median": median, "spread": [min(values), max(values)] if values else None,
        "shown": all_shown, "within": None if epochs is not None else experiment.within(median, all_shown),
        "command": f"nndl reproduce {experiment.id}{seed_words}{' --quick' if quick else ''}"
                   f"{'' if epochs is None else f' --epochs {epochs}'}",
        "seconds": sum(r.get("seconds", 0.0) for r in runs),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count()},
    }


def load_result(path):
    """Read an ID.json written by :func:`reproduce`, every field checked (FileFormatError when it is not one)."""
    data = _read_json(path)
    if isinstance(data, dict) and data.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not an experiment result written by nndl reproduce")
    check_result(data, str(path), _registered(data))
    _check_name(path, data)
    return data


def _registered(data):
    """The registered experiment a result names, or None."""
    return experiments().get(data.get("id")) if isinstance(data, dict) and isinstance(data.get("id"), str) else None


def _finish(experiment, quick, runs, seeds, out, echo, epochs=None):
    """Write ID.json (ID-eN.json) and its figure; returns the combined result."""
    result = _combine(experiment, quick, runs, seeds, epochs)
    stem = _stem(experiment, epochs)
    atomic_write_text(Path(out) / f"{stem}.json", json.dumps(result, indent=1))
    if experiment.plot is not None:
        try:
            experiment.plot(result, Path(out) / f"{stem}.png")
        except Exception as e:                       # a figure must not lose the result it draws
            echo(f"{experiment.id}: the figure failed ({type(e).__name__}: {e}); the result is kept")
    verdict = {True: "reproduces the book", False: "does not reproduce the book", None: ""}[result["within"]]
    if quick:
        verdict = "a quick run, not compared with the book"
    elif epochs is not None:
        verdict = f"{epochs} of the book's {result['book_epochs']} epochs, not compared with the book"
    ours = format_value(result["median"], experiment.unit) if result["median"] is not None else \
        runs[0].get("summary", "")
    echo(f"{experiment.id}: {ours}{' (median)' if len(runs) > 1 and result['median'] is not None else ''}"
         f"{'; book: ' + experiment.book if experiment.book else ''}{'; ' + verdict if verdict else ''}")
    return result


def _silent(line):
    """An echo that says nothing."""


def reproduce(ids, *, seeds=(1, 2, 3), quick=False, out="reproduced", jobs=1, force=False, data_dir=None,
              epochs=None, together=False, echo=print, device=None, cuda_graph=False):
    """Run the experiments ``ids`` (ids, groups or "all") for ``seeds``; see the module docstring.

    ``epochs``: train each for this many epochs instead of the book's (only
    experiments that train one network; the others are a ConfigError, before any run).
    ``together``: an experiment that can (``run_many``: the chapter 6 rungs)
    trains its pending seeds at once, in one process (a GPU's way; on a CPU,
    ``jobs`` processes of one seed each are usually faster).
    ``device``: where the chapter 6 networks train ("cuda", "cpu", ...; None: the CPU).
    ``cuda_graph``: on a CUDA device, replay their training steps from CUDA graphs (not those in bfloat16).
    ``echo``: called with each line of progress (None: say nothing).

    Returns
    -------
    Outcome
    """
    from nndl.experiments.registry import select
    from nndl.files.outputs import check_outputs

    if echo is None:
        echo = _silent

    seeds = check_seeds(seeds)
    if cuda_graph:                                   # refused before any run where graphs cannot run
        from nndl.deep.device import resolve_device
        from nndl.deep.graphs import check_cuda_graph
        check_cuda_graph(resolve_device(device or "cpu"))
    chosen = select(ids)
    if epochs is not None:
        _check_epochs(chosen, quick, epochs)
    reduced = {e.id: _reduced(e, quick, epochs) for e in chosen}
    out = Path(out)
    check_outputs({"--out": str(out / "REPORT.md")})
    _check_needs(chosen, data_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)

    outcome = Outcome()
    pending: dict[str, list[int | None]] = {}                   # id -> seeds still to run
    done: dict[str, dict[int | None, dict[str, Any]]] = {}       # id -> {seed: result}
    for experiment in chosen:
        wanted = _seeds(experiment, seeds)
        e = reduced[experiment.id]
        if not force:
            final = _read_checked(out / f"{_stem(experiment, e)}.json",
                                  partial(check_result, experiment=experiment), echo,
                                  "combining its seeds again")
            if final is not None and final["quick"] == quick and final.get("epochs") == e \
                    and set(final["seeds"]) == set(wanted) \
                    and final.get("config") == config_dict(experiment.settings(quick, e)):
                outcome.skipped.append(experiment.id)
                continue
        done[experiment.id] = {}
        for seed in wanted:
            part = None
            if not force:
                part = _read_checked(_part_path(out, experiment, seed, e),
                                     partial(_check_run_at, experiment=experiment, seed=seed, quick=quick, epochs=e),
                                     echo, "running that seed again")
            if part is not None:
                done[experiment.id][seed] = part
            else:
                pending.setdefault(experiment.id, []).append(seed)
    if outcome.skipped:
        echo(f"already done (use --force to run again): {', '.join(outcome.skipped)}")
    tasks = [(i, s) for i in pending for s in pending[i]]
    total = len(tasks)
    echo(f"{total} run(s) of {len(done)} experiment(s){' (quick)' if quick else ''}"
         f"{f', {jobs} at a time' if jobs > 1 and total > 1 else ''}; results in {out}")

    def settle(experiment_id, seed, result, k):
        experiment = get(experiment_id)
        if "error" in result:
            outcome.failed[experiment_id] = result["error"].strip().splitlines()[-1]
            echo(f"[{k}/{total}] {experiment_id}{_seed_words(seed)} failed: {result['error'].strip()}")
            return
        e = reduced[experiment_id]
        result = {"format": RUN_FORMAT, "version": RUN_VERSION, **result, "id": experiment_id, "quick": quick,
                  "config": config_dict(experiment.settings(quick, e))}
        try:                                   # what is written must read back: the same check, before writing
            check_run(json.loads(json.dumps(result)), experiment, seed, quick, e, f"{experiment_id}'s result")
        except (FileFormatError, ValueError, TypeError, RecursionError) as error:
            message = str(error).replace(" is damaged ", " is not a valid result ")
            outcome.failed[experiment_id] = message
            echo(f"[{k}/{total}] {experiment_id}{_seed_words(seed)} failed: {message}")
            return
        atomic_write_text(_part_path(out, experiment, seed, e), json.dumps(result, indent=1))
        done[experiment_id][seed] = result
        echo(f"[{k}/{total}] {experiment_id}{_seed_words(seed)}: {_run_words(experiment, result)} "
             f"({result['seconds']:.1f} s)")
        _maybe_finish(experiment_id)

    def _maybe_finish(experiment_id):
        experiment = get(experiment_id)
        wanted = _seeds(experiment, seeds)
        if experiment_id in outcome.failed or set(done[experiment_id]) != set(wanted):
            return
        runs = [_strip(done[experiment_id][s]) for s in wanted]
        _finish(experiment, quick, runs, wanted, out, echo, reduced[experiment_id])
        outcome.finished.append(experiment_id)
        write_report(out, echo)

    work = str(out / "runs" / "checkpoints")
    for experiment_id in [i for i in done if i not in pending]:
        _maybe_finish(experiment_id)          # every seed was already saved: just combine them
    if together:
        for experiment_id in [i for i in pending if get(i).run_many is not None and len(pending[i]) > 1]:
            group = pending.pop(experiment_id)
            echo(f"{experiment_id}: seeds {' '.join(map(str, group))} trained together")
            for k, result in enumerate(run_together(experiment_id, group, quick, data_dir, None, work,
                                                    reduced[experiment_id], device, cuda_graph), 1):
                settle(experiment_id, result["seed"], result, k)
        tasks = [(i, s) for i in pending for s in pending[i]]
    try:
        if jobs <= 1 or total <= 1:
            for k, (experiment_id, seed) in enumerate(tasks, 1):
                settle(experiment_id, seed,
                       run_one(experiment_id, seed, quick, data_dir, None, work, reduced[experiment_id], device,
                               cuda_graph), k)
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, total), mp_context=get_context("spawn"),
                                     initializer=_worker_init, initargs=(1,)) as pool:
                futures = {pool.submit(run_one, i, s, quick, data_dir, 1, work, reduced[i], device, cuda_graph): (i, s)
                           for i, s in tasks}
                try:
                    for k, future in enumerate(as_completed(futures), 1):
                        experiment_id, seed = futures[future]
                        try:
                            result = future.result()
                        except Exception as e:              # a worker that died (killed, out of memory)
                            result = {"seed": seed, "error": f"the worker process failed: {e}"}
                        settle(experiment_id, seed, result, k)
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        kept = sum(len(v) for v in done.values())
        echo(f"interrupted: the {kept} finished run(s) are saved in {out / 'runs'}; "
             "run the same command again to go on from there")
        raise
    return outcome


_TEMPORARY = re.compile(r"\.(.+)\.\d+\.[0-9a-f]{8}\.tmp")


def _remove_leftovers(out):
    """Remove the temporary files that writers killed outright (``kill -9``) left in DIR and DIR/runs.

    The atomic writer removes them at the next write of the same file; a command that finds everything done
    writes nothing, so it tidies up here. Temporary files of writers still running are left alone.
    """
    from nndl.files.atomic import _remove_leftovers as remove
    for directory in (out, out / "runs"):
        try:
            names = {m.group(1) for m in map(_TEMPORARY.fullmatch, os.listdir(directory)) if m}
        except OSError:
            continue
        for name in names:
            remove(directory, name)


def _check_epochs(chosen, quick, epochs):
    """Refuse --epochs for experiments without a number of epochs, naming them all, before any run."""
    from nndl.errors import ConfigError
    cannot = [e.id for e in chosen if e.book_epochs(quick) is None]
    if cannot:
        raise ConfigError(f"--epochs changes the experiments that train one network; these do not: "
                          f"{', '.join(cannot)}")
    for experiment in chosen:
        experiment.settings(quick, epochs)               # validates the number itself


def _strip(result):
    """A seed's result as it goes into ID.json (without the fields ID.json states once)."""
    return {k: v for k, v in result.items() if k not in ("id", "quick", "config", "format", "version")}


def _seed_words(seed):
    return "" if seed is None else f" seed {seed}"


def _run_words(experiment, result):
    if result.get("summary"):
        return result["summary"]
    if result.get("value") is not None:
        return experiment.format(result["value"])
    return "done"


def _verdict(result):
    if result.get("quick"):
        return "quick run: not compared"
    if result.get("epochs") is not None:
        return f"not compared: {result['epochs']} of {result.get('book_epochs')} epochs"
    within = result.get("within")
    if result.get("target") is None:
        return {True: "shown", False: "**not shown**", None: "-"}[result.get("shown")]
    return {True: "yes", False: "**no**", None: "-"}[within]


def _ours(result):
    unit = result.get("unit", "%")
    runs = result.get("runs", [])
    if result.get("median") is None:
        return (runs[0].get("summary") or "-") if runs else "-"
    text = format_value(result["median"], unit)
    seeded = [run for run in runs if run.get("seed") is not None]
    members = [a for run in runs for a in run.get("member_accuracies") or []]
    if members:
        count = f"{len(runs)} ensemble{'s' if len(runs) > 1 else ''} of {len(runs[0]['member_accuracies'])}"
    elif seeded:
        count = f"{len(seeded)} seed{'s' if len(seeded) > 1 else ''}"
    else:
        count = ""
    parts = []
    if len(runs) > 1 and result.get("spread"):
        low, high = result["spread"]
        parts.append(f"{format_value(low, unit)} to {format_value(high, unit)}, {count}")
    elif count:
        parts.append(count)
    if members:                                          # an ensemble's networks alone
        parts.append(f"the networks alone: best {format_value(max(members), unit)}, "
                     f"median {format_value(statistics.median(members), unit)}")
    if parts:
        text += f" ({'; '.join(parts)})"
    return text


def write_report(out, echo=None):
    """Rewrite DIR/REPORT.md from every DIR/ID.json, in the registry's order.

    A file that claims to be a result but is damaged is left out of the report, and ``echo`` (when given)
    says so in a line.
    """
    out = Path(out)
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("*.json")):
        try:
            data = _read_json(path, path.name)
            if not (isinstance(data, dict) and data.get("format") == FORMAT) and not _named_like_result(path.stem):
                continue                                    # not a result (notes of the user's, say)
            check_result(data, path.name, _registered(data))
            _check_name(path, data)
        except FileNotFoundError:
            continue                                        # removed meanwhile
        except FileFormatError as e:
            if echo is not None and (_named_like_result(path.stem) or _claims_result(path)):
                echo(f"{e}: left out of REPORT.md")
            continue
        if _preferred(data, results.get(data["id"])):
            results[data["id"]] = data
    order = list(experiments())
    rows = sorted(results.values(), key=lambda r: (order.index(r["id"]) if r["id"] in order else len(order), r["id"]))
    quick = any(r.get("quick") for r in rows)
    reduced = any(r.get("epochs") is not None for r in rows)
    lines = [
        "# The book's experiments, reproduced",
        "",
        f"Written by `nndl reproduce` ({len(rows)} of {len(order)} experiments have results here"
        + ("; rows marked quick ran the small --quick configuration and are not comparable with the book"
           if quick else "")
        + "). "
        "\"ours\" is the median over seeds, with the lowest and highest and the number of seeds in brackets; "
        "\"within tolerance\" compares it with the book's number (yes also when better), or says whether "
        "the behaviour the book describes was shown. Each row's command runs it again."
        + (" A row \"not compared: N of M epochs\" was trained for N epochs instead of the book's M (`--epochs N`); "
           "the book's own run replaces it when it is done." if reduced else ""),
        "",
        "| id | what | book | ours | within tolerance? | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        what = r["title"] + (" (quick)" if r.get("quick") else "")
        lines.append(f"| {r['id']} | {_cell(what)} | {_cell(r.get('book') or '-')} | {_cell(_ours(r))} | "
                     f"{_verdict(r)} | `{r['command']}` |")
    atomic_write_text(out / "REPORT.md", "\n".join(lines) + "\n")
    return out / "REPORT.md"


def _check_name(path, data):
    """A result whose file is named after an experiment must be that experiment's (ID.json or ID-eN.json)."""
    path = Path(path)
    epochs = data.get("epochs")
    if _named_like_result(path.stem) and path.stem not in (data["id"], f"{data['id']}-e{epochs}"):
        _bad(path.name, f"id: its name says {path.stem}, its contents {brief(data['id'])}")


def _claims_result(path):
    """Whether a file that does not parse starts like a result of nndl reproduce."""
    try:
        with open(path, "rb") as f:
            return b'"nndl-experiment"' in f.read(4096)
    except OSError:
        return False


def _named_like_result(stem):
    """Whether a file's stem is that of a result: "ID" or "ID-eN" for a registered id."""
    match = re.fullmatch(r"(.+)-e\d+", stem)
    return stem in experiments() or (match is not None and match.group(1) in experiments())


def _preferred(result, other):
    """Whether the report shows ``result`` rather than ``other`` for the same id: the book's run, else the longest."""
    if other is None:
        return True
    mine, theirs = result.get("epochs"), other.get("epochs")
    if mine is None or theirs is None:
        return mine is None and theirs is not None
    return mine > theirs


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")
