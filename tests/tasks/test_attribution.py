"""Attribution maps against hand-derived values and against Captum (test-only), to 1e-5."""

import pytest
import torch
from torch import nn

from visionflow.errors import SpecError
from visionflow.tasks.understanding.attribution import (
    class_activation_map,
    global_pool_layer,
    grad_cam,
    guided_backprop,
    last_conv_layer,
    occlusion,
    pixel_map,
    saliency,
    smoothgrad,
)


def small_cnn() -> nn.Sequential:
    """Conv-ReLU-Conv-ReLU, global average pooling, linear head: ``[B, 1, 8, 8] -> [B, 3]``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    return


def test_saliency_of_a_linear_model_is_its_weights():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    images = torch.randn(5, 2, 3, 3)
    targets = torch.tensor([0, 1, 2, 3, 1])
    gradient = saliency(model, images, targets)
    weights = model[1].weight.detach().view(4, 2, 3, 3)[targets]
    assert torch.equal(gradient, weights)
    # gradient x input = weight x input, whose sign is sign(w) * sign(x), by hand
    assert torch.equal((gradient * images).sign(), weights.sign() * images.sign())
    assert torch.equal(pixel_map(gradient), weights.abs().amax(dim=1))
    assert model[1].weight.grad is None


def test_occlusion_of_a_one_pixel_model_lights_that_pixel_only():
    class OnePixel(nn.Module):
        def forward(self, images):  # logits [B, 2] = (0, 5 * pixel(3, 5))
            value = images[:, 0, 3, 5]
            return torch.stack([torch.zeros_like(value), 5 * value], dim=1)

    images = torch.ones(2, 1, 8, 8)
    drops = occlusion(OnePixel(), images, torch.tensor([1, 1]), patch=1, stride=1)
    assert drops[:, 3, 5].min() > 0.4
    drops[:, 3, 5] = 0
    assert drops.abs().max() == 0


def test_smoothgrad_of_a_linear_model_is_its_weights():
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 2))
    images = torch.randn(3, 1, 3, 3)
    targets = torch.tensor([0, 1, 1])
    expected = model[1].weight.detach().view(2, 1, 3, 3)[targets]
    result = smoothgrad(
        model, images, targets, samples=4, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(result, expected)


def test_grad_cam_and_cam_agree_on_a_global_pooling_net():
    """For global average pooling into a linear head, Grad-CAM's weights are CAM's / (h w)."""
    model = small_cnn()
    images = torch.randn(4, 1, 8, 8)
    targets = torch.tensor([0, 1, 2, 0])
    assert global_pool_layer(model, images, head="6") == "3"
    assert last_conv_layer(model) == "2"
    cam = class_activation_map(model, images, targets, layer="3", head="6", upsample=False)
    gradcam = grad_cam(model, images, targets, layer="3", upsample=False)
    torch.testing.assert_close(gradcam, cam.clamp_min(0) / 64, rtol=1e-5, atol=1e-6)
    assert grad_cam(model, images, targets, layer="3").shape == (4, 8, 8)


def test_cam_refuses_a_net_without_global_pooling_and_names_unknown_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    images = torch.randn(1, 1, 8, 8)
    with pytest.raises(SpecError, match="global pooling"):
        class_activation_map(model, images, torch.tensor([0]), layer="0", head="2")
    with pytest.raises(SpecError, match="no layer 'conv9'"):
        grad_cam(model, images, torch.tensor([0]), layer="conv9")


# ------------------------------------------------------------------------------------ Captum

captum = pytest.importorskip("captum.attr")


def test_saliency_matches_captum():
    model, images, targets = small_cnn(), torch.randn(3, 1, 8, 8), torch.tensor([2, 0, 1])
    expected = captum.Saliency(model).attribute(images, target=targets, abs=False)
    torch.testing.assert_close(saliency(model, images, targets), expected, rtol=1e-5, atol=1e-5)


def test_guided_backprop_matches_captum():
    model, images, targets = small_cnn(), torch.randn(3, 1, 8, 8), torch.tensor([2, 0, 1])
    expected = captum.GuidedBackprop(model).attribute(images, target=targets)
    result = guided_backprop(model, images, targets)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(result, saliency(model, images, targets))


def test_grad_cam_matches_captum():
    model, images, targets = small_cnn(), torch.randn(3, 1, 8, 8), torch.tensor([2, 0, 1])
    expected = captum.LayerGradCam(model, model[3]).attribute(
        images, target=targets, relu_attributions=True
    )[:, 0]
    result = grad_cam(model, images, targets, layer="3", upsample=False)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_occlusion_matches_captum():
    model, images, targets = small_cnn(), torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    probabilities = lambda x: model(x).softmax(dim=1)
    expected = captum.Occlusion(probabilities).attribute(
        images, target=targets, sliding_window_shapes=(1, 3, 3), strides=(1, 2, 2), baselines=0.0
    )
    result = occlusion(model, images, targets, patch=3, stride=2)
    torch.testing.assert_close(result, expected[:, 0], rtol=1e-5, atol=1e-5)
