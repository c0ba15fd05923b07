"""Head marking, freezing, head replacement, loading local and torchvision weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

from visionflow.errors import CheckpointError, SpecError
from visionflow.tasks.nets import build_net, transfer


def lenet(num_classes: int = 3, **net_args) -> nn.Module:
    return build_net(
        "lenet5", num_classes=num_classes, in_channels=1, image_size=(16, 16), net_args=net_args
    )


def small_resnet(num_classes: int = 3) -> nn.Module:
    return build_net(
        "resnet18",
        num_classes=num_classes,
        in_channels=3,
        image_size=None,
        net_args={"small_input": True},
    )


def test_split_backbone_head_partitions_parameters():
    net = lenet()
    backbone, head = transfer.split_backbone_head(net)
    assert head is net.classifier[6]
    assert {id(p) for p in backbone} | {id(p) for p in head.parameters()} == {
        id(p) for p in net.parameters()
    }
    assert not {id(p) for p in backbone} & {id(p) for p in head.parameters()}


def test_unmarked_model_is_a_clear_error():
    with pytest.raises(TypeError, match="does not name its head"):
        transfer.split_backbone_head(nn.Linear(2, 2))


def test_replace_head_keeps_features_and_changes_classes():
    net = lenet(num_classes=3)
    new = transfer.replace_head(net, 7)
    assert net.classifier[6] is new and new.in_features == 84 and new.out_features == 7
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 7)


def test_freeze_backbone_stops_gradients_and_batchnorm_statistics():
    net = small_resnet()
    transfer.freeze_backbone(net)
    backbone, head = transfer.split_backbone_head(net)
    assert not any(p.requires_grad for p in backbone)
    assert all(p.requires_grad for p in head.parameters())
    running_mean = net.bn1.running_mean.clone()
    net(torch.randn(4, 3, 16, 16)).sum().backward()
    assert all(p.grad is None for p in backbone) and head.weight.grad is not None
    assert torch.equal(net.bn1.running_mean, running_mean)


def test_weights_round_trip_through_a_file(tmp_path):
    source, target = lenet(), lenet()
    path = tmp_path / "lenet.pt"
    torch.save(source.state_dict(), path)
    report = transfer.load_weights(target, path)
    assert not report.head_replaced and report.loaded_keys == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_weights_for_other_classes_replace_only_the_head(tmp_path):
    source, target = lenet(num_classes=10), lenet(num_classes=3)
    fresh_head = target.classifier[6].weight.clone()
    torch.save(source.state_dict(), tmp_path / "ten_classes.pt")
    report = transfer.load_weights(target, tmp_path / "ten_classes.pt")
    assert report.head_replaced
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert torch.equal(target.classifier[3].weight, source.classifier[3].weight)
    assert torch.equal(target.classifier[6].weight, fresh_head)


def test_a_lightning_checkpoint_loads_as_weights(tmp_path):
    source, target = lenet(), lenet()
    state = {f"net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "run.ckpt")
    transfer.load_weights(target, tmp_path / "run.ckpt")
    assert torch.equal(target.features[3].weight, source.features[3].weight)


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(CheckpointError, match=r"weights: .*nope.pt: no such file"):
        transfer.load_weights(lenet(), tmp_path / "nope.pt")


def test_wrong_keys_are_listed(tmp_path):
    torch.save(small_resnet().state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError) as error:
        transfer.load_weights(lenet(), tmp_path / "resnet.pt")
    message = error.value.message
    assert "missing key(s): classifier.1.bias" in message
    assert "unexpected key(s): bn1.bias" in message and ", ..." in message


def test_backbone_shape_mismatch_is_an_error(tmp_path):
    torch.save(lenet(activation="tanh").state_dict(), tmp_path / "same.pt")
    transfer.load_weights(lenet(), tmp_path / "same.pt")  # activation has no weights: fits
    wide = build_net("lenet5", num_classes=3, in_channels=3, image_size=(16, 16))
    torch.save(wide.state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(
        CheckpointError,
        match=r"1 shape mismatch key\(s\): features.0.weight "
        r"\(6, 3, 5, 5\) vs \(6, 1, 5, 5\)",
    ):
        transfer.load_weights(lenet(), tmp_path / "rgb.pt")


def test_files_that_are_not_state_dicts(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot load it with torch.load\(weights_only"):
        transfer.load_weights(lenet(), tmp_path / "text.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state_dict"):
        transfer.load_weights(lenet(), tmp_path / "list.pt")


def test_pretrained_offline_says_to_pass_weights(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(CheckpointError, match=r"pretrained: cannot download") as error:
        transfer.load_pretrained(small_resnet(), "resnet18")
    assert "weights: /path" in error.value.hint and "resnet18-" in error.value.hint


def test_pretrained_imagenet_weights_load_with_a_new_head(monkeypatch):
    imagenet = build_net("resnet18", num_classes=1000, in_channels=3, image_size=None)
    monkeypatch.setattr(
        torch.hub, "load_state_dict_from_url", lambda url, **kwargs: imagenet.state_dict()
    )
    net = build_net("resnet18", num_classes=5, in_channels=3, image_size=None)
    assert transfer.load_pretrained(net, "resnet18").head_replaced
    assert torch.equal(net.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)


def test_nets_without_torchvision_weights():
    with pytest.raises(SpecError, match="net 'lenet5' has no torchvision weights"):
        transfer.load_pretrained(lenet(), "lenet5")
