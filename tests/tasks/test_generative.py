"""Generative tasks: ELBO terms, masked-convolution causality, GAN loss signs, sampling, baseline."""

from __future__ import annotations

import math

import pytest
import torch

from visionflow.errors import SpecError
from visionflow.tasks.generative import GANTask, PixelCNNTask, VAETask
from visionflow.tasks.generative.features import train_classifier
from visionflow.tasks.generative.gan import discriminator_loss, generator_loss, gradient_penalty
from visionflow.tasks.generative.vae import (
    bernoulli_log_likelihood,
    discretized_log_likelihood,
    gaussian_kl,
)
from visionflow.tasks.nets.pixelcnn import pixelcnn

DATA = {
    "num_classes": 3,
    "in_channels": 1,
    "image_size": [8, 8],
    "pixel_mean": [0.5],
    "pixel_std": [0.25],
}


def test_gaussian_kl_matches_a_hand_computation():
    mean, log_var = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 4 - 1 - ln 4)
    expected = 0.5 + 0.5 * (3 - math.log(4.0))
    assert gaussian_kl(mean, log_var).item() == pytest.approx(expected)


@pytest.mark.parametrize(
    "kind, cdf",
    [
        ("logistic", lambda x: 1 / (1 + math.exp(-x))),
        ("gaussian", lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))),
    ],
)
def test_discretized_likelihood_is_the_mass_of_the_pixel_bin(kind, cdf):
    mean, scale = 0.4, 0.1
    pixel = 100 / 255
    expected = math.log(
        cdf((pixel + 1 / 510 - mean) / scale) - cdf((pixel - 1 / 510 - mean) / scale)
    )
    value = discretized_log_likelihood(
        torch.full((1, 1, 1, 1), pixel),
        torch.full((1, 1, 1, 1), mean),
        torch.full((1, 1, 1, 1), math.log(scale)),
        kind,
    )
    assert value.item() == pytest.approx(expected, rel=1e-4)
    # the end bins reach to infinity: black is everything below its upper edge
    black = discretized_log_likelihood(
        torch.zeros(1, 1, 1, 1),
        torch.full((1, 1, 1, 1), mean),
        torch.full((1, 1, 1, 1), math.log(scale)),
        kind,
    )
    assert black.item() == pytest.approx(math.log(cdf((1 / 510 - mean) / scale)), rel=1e-4)


def test_discretized_likelihood_sums_to_one_over_the_levels():
    levels = torch.arange(256.0).view(256, 1, 1, 1) / 255
    log_p = discretized_log_likelihood(
        levels, torch.full_like(levels, 0.3), torch.full_like(levels, math.log(0.2)), "logistic"
    )
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-4)


def test_bernoulli_likelihood_of_binarized_pixels():
    pixels = torch.tensor([[[[0.9, 0.1]]]])
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])
    expected = math.log(0.5) + math.log(0.25)  # P(1) = 0.5; P(0) = 1 - 3/4
    assert bernoulli_log_likelihood(pixels, logits).item() == pytest.approx(expected)


def test_vae_loss_is_the_negative_elbo_with_beta():
    torch.manual_seed(0)
    task = VAETask(**DATA, net_args={"latent_dim": 2, "width": 4}, beta=2.0)
    pixels = torch.rand(2, 1, 8, 8).mul(255).round() / 255
    torch.manual_seed(1)
    recon, kl = task.elbo_terms(pixels, None)
    torch.manual_seed(1)
    losses = task.validation_losses(pixels, None)
    assert torch.allclose(losses["loss"], (recon + 2 * kl) / 64)
    assert torch.allclose(losses["bpd"], (recon + kl) / (64 * math.log(2)))
    assert (kl > 0).all()


@pytest.mark.parametrize("colors", [1, 3])
@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_output_at_a_subpixel_depends_only_on_earlier_subpixels(colors, gated):
    """Causal for both nets; the gated one (no blind spot) sees every earlier subpixel."""
    torch.manual_seed(0)
    net = pixelcnn(
        in_channels=colors, image_size=[5, 5], num_classes=0, width=12, layers=2, gated=gated
    )
    with torch.no_grad():  # positive biases: no ReLU is dead at init, every path counts
        for conv in net.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.bias.fill_(0.5)
    height = width = 5
    for row, column, color in [(0, 0, 0), (2, 3, colors - 1), (4, 4, 0), (1, 0, colors - 1)]:
        images = torch.rand(1, colors, height, width, requires_grad=True)
        net(images)[0, :, color, row, column].sum().backward()
        gradient = images.grad[0].abs()  # [C, H, W]
        order = torch.arange(height * width).view(height, width)  # raster position
        here = row * width + column
        later = (order > here)[None].expand(colors, -1, -1).clone()
        later[color:, row, column] = True  # this and later colors
        assert gradient[later].max() == 0, (row, column, color)
        earlier = gradient[~later]
        if len(earlier):
            assert earlier.sum() > 0  # it does see what comes before
            assert (earlier > 0).all() or not gated, (row, column, color)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_prepared_row_logits_equal_the_whole_image_logits(layers, gated):
    """From the rows above and the row as it is when called (sampling fills it in between)."""
    torch.manual_seed(0)
    net = pixelcnn(
        in_channels=2, image_size=[12, 5], num_classes=3, width=4, layers=layers, gated=gated
    )
    images, labels = torch.rand(2, 2, 12, 5), torch.tensor([0, 2])
    for row in range(12):
        row_logits = net.prepare_row(images, labels, row)
        images[:, :, row] = torch.rand(2, 2, 5)  # filled in after the row was prepared
        assert torch.allclose(row_logits(), net(images, labels)[..., row, :], atol=1e-6)


def test_pixelcnn_samples_the_whole_batch_on_the_pixel_levels():
    torch.manual_seed(0)
    task = PixelCNNTask(
        **{**DATA, "image_size": [4, 4]}, net_args={"width": 4, "layers": 1}, conditional=True
    )
    samples = task.sample(3, torch.tensor([0, 1, 2]))
    assert samples.shape == (3, 1, 4, 4)
    assert torch.equal(samples * 255, (samples * 255).round())
    nll = task.log_likelihood_bound(samples, torch.tensor([0, 1, 2]))
    assert nll.shape == (3,) and (nll > 0).all()


def test_gan_loss_signs():
    good, bad = torch.tensor([5.0]), torch.tensor([-5.0])
    for loss in ("non_saturating", "hinge", "wgan_gp"):
        # the discriminator does well when real scores are high and fake ones low
        assert discriminator_loss(good, bad, loss) < discriminator_loss(bad, good, loss)
        # the generator does well when the discriminator scores its images high
        assert generator_loss(good, loss) < generator_loss(bad, loss)
    scores = torch.zeros(4, requires_grad=True)
    generator_loss(scores, "non_saturating").backward()
    assert (scores.grad < 0).all()  # raising D(G(z)) lowers the generator's loss
    assert generator_loss(torch.zeros(1), "non_saturating").item() == pytest.approx(math.log(2))


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    weights = torch.zeros(1, 1, 2, 2)
    weights[0, 0, 0, 0] = 1.0

    def critic(images, labels):  # gradient norm exactly 1 everywhere
        return (images * weights).flatten(1).sum(1)

    real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    assert gradient_penalty(critic, real, fake, None).item() == pytest.approx(0.0)
    assert gradient_penalty(
        lambda x, y: 3 * critic(x, y), real, fake, None
    ).item() == pytest.approx(4.0)


def test_gan_trains_two_optimizers_and_keeps_an_ema_generator():
    task = GANTask(**DATA, net_args={"latent_dim": 2, "width": 4}, ema_decay=0.5)
    assert not task.automatic_optimization
    assert {id(p) for p in task.parameter_groups()[0]["params"]} == {
        id(p) for p in task.net.generator.parameters()
    }
    assert task.discriminator_config.lr == 2e-4 and task.discriminator_config.momentum == 0.5
    # the first update's decay is the warm-up's 1/10; from the 9th on it is ema_decay
    for updates, decay in [(0, 0.1), (100, 0.5)]:
        task.ema_updates = updates
        before = [p.clone() for p in task.ema_generator.parameters()]
        with torch.no_grad():
            for p in task.net.generator.parameters():
                p.add_(1.0)
        task.update_ema()
        assert task.ema_updates == updates + 1
        for old, new, current in zip(
            before, task.ema_generator.parameters(), task.net.generator.parameters()
        ):
            assert torch.allclose(new, decay * old + (1 - decay) * current)
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    resumed = GANTask(**DATA, net_args={"latent_dim": 2, "width": 4})
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.ema_updates == 101  # a resumed fit continues the warm-up where it was


def test_baseline_is_the_per_subpixel_histogram():
    task = VAETask(**DATA, net_args={"latent_dim": 2, "width": 4})
    black = torch.zeros(4, 1, 8, 8)
    task.count_baseline([(task.normalized(black), torch.zeros(4, dtype=torch.long))])
    # every subpixel saw level 0 four times: P(0) = (4 + 1) / (4 + 256) with add-one smoothing
    expected = -64 * math.log(5 / 260)
    assert task.baseline_nll(black[:1]).item() == pytest.approx(expected, rel=1e-5)
    assert torch.equal(task.pixels(task.normalized(black)), black)


@pytest.mark.parametrize(
    "args, key",
    [
        ({"image_size": [6, 6]}, "image_size"),
        ({"net_args": {"depth": 3}}, "net_args.depth"),
        ({"net": "dcgan"}, "net: unknown vae net 'dcgan'"),
        ({"pixel_mean": [0.5, 0.5]}, "pixel_mean"),
        ({"beta": 0.0}, "beta"),
    ],
)
def test_bad_arguments_name_the_key(args, key):
    with pytest.raises(SpecError, match=key.replace(".", r"\.")):
        VAETask(**{**DATA, "net_args": {"latent_dim": 2, "width": 4}, **args})


@pytest.mark.parametrize("size, feature_dims", [(8, 256), (16, 84)])
def test_scoring_classifier_fits_the_image_size(size, feature_dims):
    """LeNet-5 (84 features) from 16 px; below, where its convs do not fit, an MLP (256)."""
    images, labels = torch.randn(6, 1, size, size), torch.arange(6) % 3
    classifier = train_classifier(
        [(images, labels)],
        num_classes=3,
        in_channels=1,
        image_size=(size, size),
        epochs=1,
        device=torch.device("cpu"),
    )
    features, logits = classifier(images)
    assert features.shape == (6, feature_dims) and logits.shape == (6, 3)
