"""The numerical gradient check passes the real losses and layers and catches a wrong backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionflow.tasks.classification import multiclass_hinge_loss
from visionflow.tasks.gradcheck import GradientCheckError, numerical_gradient_check
from visionflow.tasks.nets import build_net


class WrongSquare(torch.autograd.Function):
    """``x ** 2`` whose backward forgets the factor 2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * x


def scores_and_targets(batch: int = 4, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, classes, generator=generator), torch.tensor([0, 3, 1, 4][:batch])


def test_softmax_cross_entropy_gradient():
    scores, targets = scores_and_targets()
    result = numerical_gradient_check(F.cross_entropy, scores, targets)
    assert result.passed and result.max_relative_error < 1e-6
    assert result.checked_elements == scores.numel()


def test_hinge_loss_gradient_with_a_linear_classifier():
    scores, targets = scores_and_targets()
    features = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    result = numerical_gradient_check(
        lambda x, w, y: multiclass_hinge_loss(x @ w, y), features, weights, targets
    )
    assert result.passed, str(result)
    assert result.checked_elements == features.numel() + weights.numel()


def test_linear_layer_gradient():
    generator = torch.Generator().manual_seed(3)
    x, w, b = (torch.randn(*shape, generator=generator) for shape in [(3, 4), (2, 4), (2,)])
    numerical_gradient_check(F.linear, x, w, b, raise_on_failure=True)


def test_lenet5_gradient_in_float64():
    torch.manual_seed(0)
    net = build_net("lenet5", num_classes=3, in_channels=1, image_size=(16, 16)).double().eval()
    names = [name for name, _ in net.named_parameters()]

    def logits(images, *parameters):
        return torch.func.functional_call(net, dict(zip(names, parameters)), (images,))

    images = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    result = numerical_gradient_check(logits, images, *net.parameters(), max_checks_per_input=8)
    assert result.passed, str(result)
    assert result.checked_elements == sum(min(8, t.numel()) for t in [images, *net.parameters()])


def test_a_wrong_backward_fails_the_check():
    x = torch.randn(5, generator=torch.Generator().manual_seed(4)) + 2.0
    result = numerical_gradient_check(lambda t: WrongSquare.apply(t).sum(), x)
    assert not result.passed
    assert result.max_relative_error == pytest.approx(0.5, abs=1e-6)  # x vs 2x
    assert result.analytical == pytest.approx(result.numerical / 2, rel=1e-6)
    with pytest.raises(GradientCheckError, match="gradient check FAILED"):
        result.raise_if_failed()


def test_a_correct_custom_function_passes():
    x = torch.randn(5, generator=torch.Generator().manual_seed(4))
    assert numerical_gradient_check(lambda t: (t * t).sum(), x).passed


def test_inputs_without_floats_are_refused():
    with pytest.raises(ValueError, match="no floating-point tensor"):
        numerical_gradient_check(lambda y: y.sum(), torch.tensor([1, 2]))
