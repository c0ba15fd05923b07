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
