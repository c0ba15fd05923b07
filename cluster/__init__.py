"""Everything Ray: the embedded local Ray and the Ray Train fit backend. Only this package imports
``ray``, and only when a function here is called (``import visionflow.cluster`` stays cheap).

    from visionflow import cluster
    results = cluster.run(spec)              # spec.resources.backend == "ray"
    cluster.resume("runs/digits_lenet/20250101-120000")
    cluster.run_seeds(spec, seeds=3)

    with cluster.embedded_ray(num_cpus=2):   # or your own ray.init(address=...)
        visionflow.pipelines.run(spec, fit_backend=cluster.RayFitBackend(num_workers=2))

See docs/ray.md.
"""

from visionflow.cluster.local import RayInfo, embedded_ray
from visionflow.cluster.run import resume, run, run_seeds
from visionflow.cluster.train import RayFitBackend

__all__ = ["RayFitBackend", "RayInfo", "embedded_ray", "resume", "run", "run_seeds"]
