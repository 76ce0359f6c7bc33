"""What every benchmark prints first: the machine it ran on, and how busy it was."""

import os
import platform

import numpy as np

__all__ = ["base_context", "cpu_line"]


def base_context():
    """Python, platform, NumPy, CPUs (all and usable) and the load average, as a JSON-ready dict."""
    context = dict(python=platform.python_version(), platform=platform.platform(), numpy=np.__version__,
                   cpu_count=os.cpu_count())
    if hasattr(os, "sched_getaffinity"):
        context["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        context["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return context


def cpu_line(context):
    """'2 CPUs (2 usable), load average 1.2 0.9 0.7'."""
    cpus = f"{context['cpu_count']} CPUs"
    if "cpus_usable" in context:
        cpus += f" ({context['cpus_usable']} usable)"
    if "load_average" in context:
        cpus += f", load average {' '.join(str(v) for v in context['load_average'])}"
    return cpus
