import pytest
import torch

#: Faster R-CNN settings that keep tiny detection tests fast (fewer proposals and RoI samples)
FAST_NET = {
    "model_kwargs": {
        "rpn_pre_nms_top_n_train": 50,
        "rpn_post_nms_top_n_train": 20,
        "rpn_pre_nms_top_n_test": 50,
        "rpn_post_nms_top_n_test": 20,
        "box_batch_size_per_image": 16,
    }
}


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a shared machine more threads spin against each
    other (5x slower here). Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_shapes(module_class, folder):
    """A shapes datamodule of any 2D family (6 train, 2 val, 2 test images of 64 px), written
    into ``folder``."""
    module = module_class(
        data_dir=str(folder),
        train_images=6,
        val_images=2,
        test_images=2,
        image_size=64,
        batch_size=2,
    )
    module.prepare_data()
    return module


def fast_dev_trainer(root):
    """A Lightning trainer of one batch per stage, quiet, writing under ``root``."""
    return quiet_trainer(root, fast_dev_run=True)


def quiet_trainer(root, **settings):
    """A Lightning trainer without logger, progress bar or model summary, writing under
    ``root``, with ``settings``."""
    import lightning.pytorch as pl

    return pl.Trainer(
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **settings,
    )
