"""Everything Ray: the embedded local Ray, the Ray Train fit backend, a local head and Ray Jobs. Only this package imports
``ray``, and only when a function here is called (``import visionflow.cluster`` stays cheap).

    from visionflow import cluster
    results = cluster.run(spec)              # spec.resources.backend == "ray"
    cluster.resume("runs/digits_lenet/20250101-120000")
    cluster.run_seeds(spec, seeds=3)

    with cluster.embedded_ray(num_cpus=2):   # or your own ray.init(address=...)
        visionflow.pipelines.run(spec, fit_backend=cluster.RayFitBackend(num_workers=2))

See docs/ray.md.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of this package that defines it; loaded on first use, so
#: ``visionflow cluster ...`` commands do not pay for torch and Lightning to parse arguments
_EXPORTS = {
    "RayEvaluationBackend": "evaluation",
    "RayFitBackend": "train",
    "RayInfo": "local",
    "connected_ray": "local",
    "embedded_ray": "local",
    "resume": "runner",
    "run": "runner",
    "run_seeds": "runner",
    "sweep": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visionflow.cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(f"visionflow.cluster.{_EXPORTS[name]}"), name)
