"""chamfer_distance against a brute-force reference, known values, gradcheck and both search paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionflow.ops import chamfer_distance, nearest, nearest_neighbor_index


def brute_force_one_way(x, y, norm, x_normals=None, y_normals=None):
    """Per-point distances [N] and normal terms [N] from x [N, D] to y [M, D], dense; norm
    "l2" is the plain Euclidean distance."""
    difference = x[:, None, :] - y[None, :, :]  # [N, M, D]
    distances = {
        1: lambda: difference.abs().sum(-1),
        2: lambda: difference.square().sum(-1),
        "l2": lambda: difference.norm(dim=-1),
    }[norm]()
    nearest_distance, index = distances.min(dim=1)
    if x_normals is None:
        return nearest_distance, None
    cosine = F.cosine_similarity(x_normals, y_normals[index], dim=1, eps=1e-6)
    return nearest_distance, 1 - cosine.abs()


def brute_force(x, y, x_lengths, y_lengths, norm=2, x_normals=None, y_normals=None):
    """Batch-mean of per-cloud point-mean chamfer (both directions), clouds one by one."""
    losses, normal_losses = [], []
    for b in range(x.shape[0]):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        xn = x_normals[b, :n] if x_normals is not None else None
        yn = y_normals[b, :m] if y_normals is not None else None
        forward, forward_normals = brute_force_one_way(x[b, :n], y[b, :m], norm, xn, yn)
        backward, backward_normals = brute_force_one_way(y[b, :m], x[b, :n], norm, yn, xn)
        losses.append(forward.mean() + backward.mean())
        if xn is not None:
            normal_losses.append(forward_normals.mean() + backward_normals.mean())
    loss = torch.stack(losses).mean()
    return loss, (torch.stack(normal_losses).mean() if normal_losses else None)


@pytest.fixture(params=["dense", "kdtree"])
def search_path(request, monkeypatch):
    """Run the test through the dense path and through the KD-tree path."""
    monkeypatch.setattr(nearest, "DENSE_LIMIT", 1 << 40 if request.param == "dense" else 0)
    return request.param


def ragged_clouds(seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 40, 3, generator=generator, dtype=dtype)
    y = torch.rand(3, 30, 3, generator=generator, dtype=dtype)
    return x, y, torch.tensor([40, 17, 5]), torch.tensor([30, 30, 9])


@pytest.mark.parametrize("norm", [1, 2, "l2"])
def test_matches_brute_force_on_ragged_batches(search_path, norm):
    x, y, x_lengths, y_lengths = ragged_clouds()
    x_normals, y_normals = torch.randn_like(x), torch.randn_like(y)
    options = {"norm": 2, "squared": False} if norm == "l2" else {"norm": norm}
    loss, loss_normals = chamfer_distance(
        x, y, x_lengths, y_lengths, x_normals, y_normals, **options
    )
    expected, expected_normals = brute_force(x, y, x_lengths, y_lengths, norm, x_normals, y_normals)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss_normals, expected_normals)


def test_padded_points_change_nothing(search_path):
    x, y, x_lengths, y_lengths = ragged_clouds()
    loss, _ = chamfer_distance(x, y, x_lengths, y_lengths)
    x[1, 17:] = 1e6  # garbage in the padding
    y[2, 9:] = -1e6
    torch.testing.assert_close(chamfer_distance(x, y, x_lengths, y_lengths)[0], loss)


def test_known_values():
    cube = torch.tensor([[i, j, k] for i in (0.0, 1.0) for j in (0.0, 1.0) for k in (0.0, 1.0)])
    assert chamfer_distance(cube[None], cube[None])[0].item() == 0.0
    shifted = cube + torch.tensor([2.0, 0.0, 0.0])  # half the corners 1 away, half 2 away
    assert chamfer_distance(cube[None], shifted[None])[0].item() == pytest.approx(5.0)
    assert chamfer_distance(cube[None], shifted[None], norm=1)[0].item() == pytest.approx(3.0)
    euclidean, _ = chamfer_distance(cube[None], shifted[None], squared=False)
    assert euclidean.item() == pytest.approx(3.0)
    sphere = F.normalize(torch.randn(1, 500, 3), dim=-1)
    assert chamfer_distance(sphere, sphere)[0].item() == 0.0
    translated = sphere + torch.tensor([0.0, 0.0, 0.5])
    distance, _ = chamfer_distance(
        sphere, translated, single_directional=True, point_reduction="max"
    )
    assert 0 < distance.item() <= 0.25 + 1e-6  # no point moves further than the shift


def test_reductions_and_weights_follow_pytorch3d(search_path):
    x, y, x_lengths, y_lengths = ragged_clouds()
    (per_x, per_y), _ = chamfer_distance(
        x, y, x_lengths, y_lengths, batch_reduction=None, point_reduction=None
    )
    assert per_x.shape == (3, 40) and per_y.shape == (3, 30)
    assert per_x[1, 17:].abs().sum() == 0
    sums, _ = chamfer_distance(
        x, y, x_lengths, y_lengths, batch_reduction=None, point_reduction="sum"
    )
    torch.testing.assert_close(sums, per_x.sum(1) + per_y.sum(1))
    maxima, _ = chamfer_distance(
        x, y, x_lengths, y_lengths, batch_reduction="sum", point_reduction="max"
    )
    torch.testing.assert_close(
        maxima, torch.maximum(per_x.max(1).values, per_y.max(1).values).sum()
    )
    weights = torch.tensor([1.0, 0.0, 3.0], dtype=x.dtype)
    weighted, _ = chamfer_distance(x, y, x_lengths, y_lengths, weights=weights)
    means, _ = chamfer_distance(x, y, x_lengths, y_lengths, batch_reduction=None)
    torch.testing.assert_close(weighted, (means * weights).sum() / weights.sum())
    zero, zero_normals = chamfer_distance(x, y, weights=torch.zeros(3, dtype=x.dtype))
    assert zero.item() == 0 and zero_normals.item() == 0


def test_gradcheck_both_paths(search_path):
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 9, 3, generator=generator, dtype=torch.float64)
    y = torch.rand(2, 7, 3, generator=generator, dtype=torch.float64)
    x_lengths, y_lengths = torch.tensor([9, 4]), torch.tensor([5, 7])
    x_normals = torch.randn_like(x).requires_grad_()
    x.requires_grad_()
    y.requires_grad_()

    def loss(x, y, x_normals):
        value, normal_term = chamfer_distance(
            x, y, x_lengths, y_lengths, x_normals, y.detach() * 0 + 1.0
        )
        return value + normal_term

    assert torch.autograd.gradcheck(loss, (x, y, x_normals), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("norm", [1, 2])
def test_gradcheck_plain_l2_and_l1(search_path, norm):
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(2, 9, 3, generator=generator, dtype=torch.float64).requires_grad_()
    y = torch.rand(2, 7, 3, generator=generator, dtype=torch.float64).requires_grad_()
    lengths = (torch.tensor([9, 4]), torch.tensor([5, 7]))

    def loss(x, y):
        return chamfer_distance(x, y, *lengths, norm=norm, squared=False)[0]

    assert torch.autograd.gradcheck(loss, (x, y), eps=1e-6, atol=1e-5)


def test_plain_l2_has_zero_gradient_where_points_coincide():
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]], requires_grad=True)
    y = torch.tensor([[[0.0, 0, 0]]])
    chamfer_distance(x, y, squared=False)[0].backward()  # x[1] is 1 from y[0], x[0] is on it
    torch.testing.assert_close(x.grad, torch.tensor([[[0.0, 0, 0], [0.5, 0, 0]]]))


def test_nearest_index_matches_brute_force(search_path):
    x, y, x_lengths, y_lengths = ragged_clouds(seed=5)
    index = nearest_neighbor_index(x, y, x_lengths, y_lengths)
    for b in range(3):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        expected = torch.cdist(x[b, :n], y[b, :m]).argmin(dim=1)
        assert torch.equal(index[b, :n], expected)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"point_reduction": "median"}, "point_reduction"),
        ({"batch_reduction": "max"}, "batch_reduction"),
        ({"point_reduction": None}, "batch_reduction"),
        ({"norm": 3}, "norm"),
        ({"weights": -torch.ones(2)}, "weights"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        chamfer_distance(torch.rand(2, 4, 3), torch.rand(2, 5, 3), **kwargs)


def test_empty_target_cloud_gives_zero():
    x, y = torch.rand(2, 4, 3), torch.rand(2, 5, 3)
    loss, _ = chamfer_distance(
        x, y, y_lengths=torch.tensor([5, 0]), batch_reduction=None, single_directional=True
    )
    assert loss[1].item() == 0 and loss[0].item() > 0


def test_nearest_index_and_loss_do_not_depend_on_where_the_clouds_sit(search_path):
    """float32 unit clouds 100 away from the origin: the neighbours are those of a KD-tree in
    float64 (scipy) and the loss is the one at the origin (a translation changes nothing)."""
    from scipy.spatial import cKDTree

    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 300, 3, generator=generator)
    lengths = torch.tensor([300])
    far_x, far_y = x + 100, y + 100
    index = nearest_neighbor_index(far_x, far_y, lengths, lengths)
    expected = cKDTree(far_y[0].double().numpy()).query(far_x[0].double().numpy())[1]
    assert index[0].tolist() == expected.tolist()
    loss, _ = chamfer_distance(far_x, far_y)
    torch.testing.assert_close(loss, chamfer_distance(x, y)[0], rtol=1e-3, atol=0)


def test_non_finite_padding_changes_nothing(search_path):
    """PyTorch3D ignores padded points entirely: inf or NaN there must not reach the loss, its
    gradient or the normal term."""
    x, y, x_lengths, y_lengths = ragged_clouds()
    x_normals, y_normals = torch.randn_like(x), torch.randn_like(y)
    x.requires_grad_()
    expected, expected_normals = chamfer_distance(x, y, x_lengths, y_lengths, x_normals, y_normals)
    (expected_gradient,) = torch.autograd.grad(expected, x)
    y, y_normals = y.clone(), y_normals.clone()
    y[2, 9:], y_normals[2, 9:] = float("nan"), float("nan")
    padded_x = torch.where(torch.arange(40)[None, :, None] < x_lengths[:, None, None], x, torch.inf)
    loss, loss_normals = chamfer_distance(padded_x, y, x_lengths, y_lengths, x_normals, y_normals)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(loss_normals, expected_normals)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], expected_gradient)
