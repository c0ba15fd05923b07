"""``resources.strategy`` picks Ray Train's Lightning strategy in every worker."""

import pytest

pytest.importorskip("ray")

from ray.train.lightning import RayDDPStrategy, RayFSDPStrategy

from visionflow.cluster.train_worker import ray_strategy


@pytest.mark.parametrize("name, kind", [("ddp", RayDDPStrategy), ("fsdp", RayFSDPStrategy)])
def test_resources_strategy_maps_onto_ray_trains_strategies(name, kind):
    assert type(ray_strategy(name)) is kind
