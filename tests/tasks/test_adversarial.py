"""Attacks: FGSM's exact L-inf norm, PGD inside its ball, success on an undefended model, SimBA's
query count, and the classification task's adversarial-training option."""

import pytest
import torch
from torch import nn

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import SpecError
from visionflow.tasks.adversarial import AdversarialConfig, PixelSpace, fgsm, pgd, simba
from visionflow.tasks.classification import ImageClassificationTask


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    return


@pytest.fixture(scope="module")
def linear_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear classifier on 1x6x6 pixels that is right on all of its 32 images (mid-grey
    values, so no clamp at 0 or 1 is reached by small perturbations)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    pixels = 0.3 + 0.4 * torch.rand(32, 1, 6, 6)
    labels = model(pixels).argmax(dim=1).detach()
    return model, pixels, labels


def test_fgsm_has_linf_norm_epsilon_and_stays_in_range(linear_model):
    model, pixels, labels = linear_model
    adversarial = fgsm(model, pixels, labels, 0.05)
    delta = adversarial - pixels
    torch.testing.assert_close(delta.abs(), torch.full_like(delta, 0.05))
    edge = torch.cat([torch.zeros(4, 1, 6, 6), torch.ones(4, 1, 6, 6)])
    clipped = fgsm(model, edge, model(edge).argmax(1), 0.3)
    assert clipped.min() >= 0 and clipped.max() <= 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_never_leaves_the_ball(linear_model, norm, targeted):
    model, pixels, labels = linear_model
    epsilon = 0.1 if norm == "linf" else 0.5
    goal = (labels + 1) % 3 if targeted else labels
    adversarial = pgd(
        model,
        pixels,
        goal,
        epsilon,
        steps=5,
        norm=norm,
        targeted=targeted,
        generator=torch.Generator().manual_seed(0),
    )
    delta = (adversarial - pixels).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max() <= epsilon + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert model.parameters().__next__().grad is None


def test_attacks_succeed_on_an_undefended_model(linear_model):
    model, pixels, labels = linear_model
    predictions = model(pgd(model, pixels, labels, 0.25, steps=10)).argmax(1)
    assert (predictions == labels).float().mean() < 0.2
    target = (labels + 1) % 3
    reached = model(pgd(model, pixels, target, 0.25, steps=20, targeted=True)).argmax(1)
    assert (reached == target).float().mean() > 0.8


def test_simba_sees_probabilities_only_and_counts_queries(linear_model):
    model, pixels, labels = linear_model
    calls = []

    def probabilities(images):
        calls.append(len(images))
        with torch.no_grad():
            return model(images).softmax(dim=1)

    result = simba(
        probabilities,
        pixels,
        labels,
        0.25,
        max_queries=200,
        generator=torch.Generator().manual_seed(0),
    )
    assert (result.pixels - pixels).abs().max() <= 0.25 + 1e-6
    assert (model(result.pixels).argmax(1) != labels).float().mean() > 0.5
    assert 1 <= result.queries.min() and result.queries.max() <= 200
    assert result.queries.sum() <= sum(calls)  # only the images still being attacked count


def test_pixel_space_round_trip():
    space = PixelSpace([0.5, 0.25], [0.2, 0.5])
    pixels = torch.rand(2, 2, 3, 3)
    torch.testing.assert_close(space.to_pixels(space.to_inputs(pixels)), pixels)
    assert torch.equal(PixelSpace().to_inputs(pixels), pixels)


def test_adversarial_config_checks_its_values():
    with pytest.raises(SpecError, match="adversarial.epsilon"):
        AdversarialConfig(epsilon=0)
    with pytest.raises(SpecError, match="fgsm is an L-inf attack"):
        AdversarialConfig(attack="fgsm", norm="l2")


def test_adversarial_training_step_trains_on_attacked_images():
    task = ImageClassificationTask(
        num_classes=3,
        in_channels=1,
        image_size=[6, 6],
        net="linear",
        adversarial={"attack": "fgsm", "epsilon": 0.1},
        pixel_mean=[0.5],
        pixel_std=[0.25],
    )
    images = task.pixel_space.to_inputs(torch.rand(8, 1, 6, 6))
    batch = ImageClassificationBatch(images, torch.randint(0, 3, (8,)))
    attacked = task.adversarial_images(batch)
    delta = task.pixel_space.to_pixels(attacked) - task.pixel_space.to_pixels(batch.images)
    assert 0 < delta.abs().max() <= 0.1 + 1e-6
    clean_loss = nn.functional.cross_entropy(task(batch.images), batch.targets)
    assert task.training_step(batch, 0) > clean_loss
    assert task.hparams.adversarial == {"attack": "fgsm", "epsilon": 0.1}
