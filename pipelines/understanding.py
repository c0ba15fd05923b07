"""The ``understand`` stage: pictures of what a trained classifier has learned.

    stages:
      - fit
      - understand: {methods: [saliency, grad_cam, embedding], num_images: 8}

On the run's best checkpoint (or ``checkpoint``) and the test split it writes, into
``plots/understanding/``, one PNG per method (``methods``; default all of :data:`METHODS`) and
``understanding.pt`` (the maps and images as tensors, ``torch.load(..., weights_only=True)``):

- ``filters`` (first conv layer), ``patches`` (test patches where channel ``unit`` of ``layer``
  fires most), ``neighbours`` (nearest test images in last-layer feature space), ``embedding``
  (PCA and t-SNE of last-layer features coloured by class);
- ``saliency``, ``smoothgrad``, ``occlusion``, ``guided_backprop``, ``cam`` (nets with global
  pooling and a linear head; skipped with a note otherwise), ``grad_cam`` (``layer``);
- ``class_visualization``, ``feature_inversion`` and ``deepdream`` (``layer``), ``style_transfer``
  (texture synthesis and style transfer on the task's own net, or on torchvision's VGG16 from the
  local file ``vgg_weights``).

``layer`` defaults to the net's last conv layer. The algorithms are in
:mod:`visionflow.tasks.understanding`, callable without a pipeline.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch

from visionflow.batches import ImageClassificationBatch
from visionflow.errors import SpecError
from visionflow.pipelines.checkpoint_stages import load_weights
from visionflow.pipelines.stages import StageContext, stage_arguments
from visionflow.plots import save_figure
from visionflow.registry import STAGES, did_you_mean
from visionflow.rundir import atomic_write_bytes
from visionflow.tasks.adversarial import PixelSpace
from visionflow.tasks.nets.transfer import head_path
from visionflow.tasks.understanding import attribution, features, synthesis

METHODS = (
    "filters",
    "patches",
    "neighbours",
    "embedding",
    "saliency",
    "smoothgrad",
    "occlusion",
    "guided_backprop",
    "cam",
    "grad_cam",
    "class_visualization",
    "feature_inversion",
    "deepdream",
    "style_transfer",
)


# ------------------------------------------------------------------------- shared helpers


def held_out_images(context: StageContext, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` test images ``[N, C, H, W]`` (normalized) and labels ``[N]``."""
    datamodule = context.datamodule
    datamodule.setup("test")
    images, labels, count = [], [], 0
    for batch in datamodule.test_dataloader():
        if not isinstance(batch, ImageClassificationBatch):
            raise SpecError(
                f"stages: needs image-classification data, but the test split "
                f"yields {type(batch).__name__}"
            )
        images.append(batch.images.float().cpu())
        labels.append(batch.targets.cpu())
        count += len(batch)
        if count >= limit:
            break
    return torch.cat(images)[:limit], torch.cat(labels)[:limit]


def pixel_space(context: StageContext) -> PixelSpace:
    """The data's normalization (identity when it reports none)."""
    info = context.datamodule.info
    return PixelSpace(getattr(info, "pixel_mean", None), getattr(info, "pixel_std", None))


def _show(axes: Any, image: torch.Tensor, signed: bool = False) -> None:
    """Draw ``[C, H, W]`` pixels (gray for one channel) or a ``[H, W]`` map on ``axes``."""
    axes.set_axis_off()
    if image.dim() == 3 and not signed:
        shown = image.clamp(0, 1).permute(1, 2, 0).numpy()
        axes.imshow(shown[..., 0] if shown.shape[-1] != 3 else shown, cmap="gray", vmin=0, vmax=1)
        return
    shown = image if image.dim() == 2 else image.mean(dim=0)
    if signed:
        limit = float(shown.abs().max().clamp_min(1e-12))
        axes.imshow(shown.numpy(), cmap="seismic", vmin=-limit, vmax=limit)
    else:
        axes.imshow(shown.numpy(), cmap="inferno")


def plot_image_grid(
    rows: Sequence[torch.Tensor],
    titles: Sequence[str],
    signed: Sequence[int] = (),
    captions: Sequence[Sequence[str] | None] = (),
):
    """A Figure with one row per tensor of ``rows`` (``[N, C, H, W]`` pixels or ``[N, H, W]``
    maps; the row indices in ``signed`` drawn with a diverging colour map), titled ``titles``;
    ``captions[row]``, where given, labels that row's images one by one."""
    from matplotlib.figure import Figure

    columns = max(len(row) for row in rows)
    height = 1.4 + 0.2 * bool(captions)
    figure = Figure(figsize=(1.3 * columns + 0.6, height * len(rows)), layout="constrained")
    # one subfigure per row, its title a left-aligned suptitle: an axes title that long would
    # widen the first column in the constrained layout
    for index, (part, row, title) in enumerate(
        zip(figure.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, titles)
    ):
        part.suptitle(title, x=0.0, ha="left", fontsize=8)
        row_captions = captions[index] if index < len(captions) else None
        for column, axes in enumerate(part.subplots(1, columns, squeeze=False)[0]):
            if column >= len(row):
                axes.set_axis_off()
                continue
            _show(axes, row[column].detach().cpu().float(), index in signed)
            if row_captions is not None:
                axes.set_xlabel(row_captions[column], fontsize=8)
                axes.set_axis_on()
                axes.set(xticks=[], yticks=[])
    return figure


# ------------------------------------------------------------------------------ the stage


class Understanding:
    """One stage run: the net, its test images in pixels and the data's normalization."""

    def __init__(
        self,
        context: StageContext,
        num_images: int,
        layer: str | None,
        unit: int,
        steps: int,
        vgg_weights: str | None,
    ):
        self.net = context.task.eval()
        self.space = pixel_space(context)
        self.images, self.labels = held_out_images(context, max(num_images, 200))
        self.shown = slice(0, num_images)
        self.layer = layer or attribution.last_conv_layer(self.net)
        self.unit, self.steps, self.vgg_weights = unit, steps, vgg_weights
        self.seed = context.spec.seed
        self.arrays: dict[str, torch.Tensor] = {}
        self.metrics: dict[str, float] = {}
        self.notes: list[str] = []

    @property
    def head(self) -> str:
        """The net's linear head (its input: the last-layer features)."""
        net = getattr(self.net, "net", self.net)
        return ("net." if net is not self.net else "") + head_path(net)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        return self.space.to_pixels(images)

    def attributions(self, method: str) -> tuple[torch.Tensor, bool]:
        """``([N, H, W] map, signed)`` of ``method`` for the shown images and their labels."""
        images, labels = self.images[self.shown], self.labels[self.shown]
        net = self.net
        if method == "occlusion":
            return attribution.occlusion(
                net,
                images,
                labels,
                patch=max(2, images.shape[-1] // 8),
                stride=max(1, images.shape[-1] // 16),
            ), True
        if method == "grad_cam":
            return attribution.grad_cam(net, images, labels, self.layer), False
        if method == "cam":
            layer = attribution.global_pool_layer(net, images, self.head)
            if layer is None:
                raise SpecError("cam: the net has no global pooling into its linear head")
            return attribution.class_activation_map(net, images, labels, layer, self.head), True
        run = {
            "saliency": attribution.saliency,
            "guided_backprop": attribution.guided_backprop,
            "smoothgrad": lambda n, x, y: attribution.smoothgrad(
                n, x, y, generator=self.generator()
            ),
        }[method]
        return attribution.pixel_map(run(net, images, labels)), False

    # ----------------------------------------------------------------------------- figures

    def figure(self, method: str):
        """The Figure of ``method`` (and its arrays and metrics recorded on the way)."""
        if method in ("saliency", "smoothgrad", "occlusion", "guided_backprop", "cam", "grad_cam"):
            maps, signed = self.attributions(method)
            self.arrays[method] = maps
            shown = self.pixels(self.images[self.shown])
            return plot_image_grid(
                [shown, maps], ["test images", method], signed=(1,) if signed else ()
            )
        return getattr(self, f"_{method}")()

    def _filters(self):
        weights = features.first_layer_filters(self.net)  # [F, C, kh, kw]
        self.arrays["filters"] = weights
        low, high = weights.amin(), weights.amax()
        return plot_image_grid(
            [(weights - low) / (high - low).clamp_min(1e-12)],
            [f"first-layer filters {tuple(weights.shape)}"],
        )

    def _patches(self):
        patches, values = features.top_activating_patches(
            self.net, self.images, self.layer, self.unit, count=8
        )
        self.metrics["top_activation"] = float(values[0])
        title = f"{self.layer} unit {self.unit}: most activating test patches"
        return plot_image_grid([self.pixels(patches)], [title])

    def _neighbours(self):
        feats = features.head_inputs(self.net, self.images, self.head)  # [N, D]
        nearest = features.nearest_neighbours(feats[self.shown], feats, k=5, exclude_self=True)
        self.arrays["neighbours"] = nearest
        agree = self.labels[nearest] == self.labels[self.shown, None]
        self.metrics["neighbour_label_agreement"] = float(agree.double().mean())
        rows = [self.pixels(self.images[self.shown])] + [
            self.pixels(self.images[nearest[:, k]]) for k in range(nearest.shape[1])
        ]
        return plot_image_grid(rows, ["queries"] + [f"neighbour {k + 1}" for k in range(5)])

    def _embedding(self):
        from matplotlib.figure import Figure

        feats = features.head_inputs(self.net, self.images, self.head)
        figure = Figure(figsize=(9, 4.2), layout="constrained")
        for axes, method in zip(figure.subplots(1, 2), ("pca", "tsne")):
            points = features.embed_2d(feats, method, seed=self.seed)
            self.arrays[method] = points
            scatter = axes.scatter(
                points[:, 0], points[:, 1], c=self.labels.numpy(), cmap="tab10", s=8
            )
            axes.set_title(f"{method.upper()} of last-layer features ({len(points)} test images)")
        figure.colorbar(scatter, ax=axes, label="class")
        return figure

    def _class_visualization(self):
        classes = sorted(set(self.labels.tolist()))[:10]
        shape = self.images.shape[1:]
        made = torch.cat(
            [
                synthesis.class_visualization(
                    self.net, c, shape, steps=self.steps, generator=self.generator()
                )
                for c in classes
            ]
        )
        self.arrays["class_visualization"] = made
        with torch.no_grad():
            hits = (self.net(made).argmax(dim=1) == torch.tensor(classes)).double().mean()
        self.metrics["class_visualization_hit_rate"] = float(hits)
        return plot_image_grid([self.pixels(made)], [f"class visualization, classes {classes}"])

    def _feature_inversion(self):
        images = self.images[self.shown]
        inverted = synthesis.feature_inversion(
            self.net, self.layer, images, steps=self.steps, generator=self.generator()
        )
        self.arrays["feature_inversion"] = inverted
        return plot_image_grid(
            [self.pixels(images), self.pixels(inverted)],
            ["test images", f"inverted from {self.layer}"],
        )

    def _deepdream(self):
        images = self.images[self.shown]
        dreamt = synthesis.deepdream(
            self.net, self.layer, images, steps=max(1, self.steps // 5), generator=self.generator()
        )
        self.arrays["deepdream"] = dreamt
        return plot_image_grid(
            [self.pixels(images), self.pixels(dreamt)],
            ["test images", f"DeepDream on {self.layer}"],
        )

    def _style_transfer(self):
        model, to_input, from_input, layers = self._style_net()
        content, style = self.pixels(self.images[:1]), self.pixels(self.images[1:2])
        arguments = {
            "content_layer": layers[-1],
            "style_layers": layers,
            "steps": self.steps,
            "generator": self.generator(),
        }
        texture = synthesis.style_transfer(model, None, to_input(style), **arguments)
        styled = synthesis.style_transfer(model, to_input(content), to_input(style), **arguments)
        self.arrays["texture"], self.arrays["style_transfer"] = texture, styled
        return plot_image_grid(
            [content, style, from_input(texture), from_input(styled)],
            ["content", "style", "texture (Gram matrices)", "style transfer"],
        )

    def _style_net(self) -> tuple[torch.nn.Module, Callable, Callable, list[str]]:
        """``(net, pixels -> its input, its input -> pixels, conv layers)``: the task's net, or
        VGG16 (ImageNet normalization, gray repeated to RGB) from ``vgg_weights``."""
        if self.vgg_weights is None:
            convs = [n for n, m in self.net.named_modules() if isinstance(m, torch.nn.Conv2d)]
            return self.net, self.space.to_inputs, self.space.to_pixels, convs
        vgg = synthesis.load_vgg(self.vgg_weights, "vgg16")
        imagenet = PixelSpace((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        channels = self.images.shape[1]
        return (
            vgg,
            lambda p: imagenet.to_inputs(p.expand(-1, 3, -1, -1)),
            lambda x: imagenet.to_pixels(x)[:, :channels],
            ["features.0", "features.5", "features.10", "features.17", "features.24"],
        )

    def save_arrays(self, path) -> None:
        buffer = io.BytesIO()
        torch.save({name: value.detach().cpu() for name, value in self.arrays.items()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def check_understand_arguments(**args: Any) -> None:
    """The stage's ranges, checked by the runner before the run directory exists."""
    values = stage_arguments(understand, args)
    for method in values["methods"] or []:
        if method not in METHODS:
            raise SpecError(
                f"stages.understand.methods: unknown method {method!r}"
                f"{did_you_mean(method, METHODS)}",
                hint="methods: " + ", ".join(METHODS),
            )
    if values["num_images"] < 1 or values["steps"] < 1:
        raise SpecError(
            "stages.understand: num_images and steps must be >= 1, got "
            f"{values['num_images']} and {values['steps']}"
        )


@STAGES.register(
    "understand",
    description="saliency, CAM, filters, embeddings, class "
    "visualization, style transfer... as PNGs of the model",
    check=check_understand_arguments,
    tasks=("image_classification",),
)
def understand(
    context: StageContext,
    methods: list[str] | None = None,
    num_images: int = 8,
    layer: str | None = None,
    unit: int = 0,
    steps: int = 100,
    vgg_weights: str | None = None,
    checkpoint: str | None = None,
) -> dict[str, float]:
    check_understand_arguments(methods=methods, num_images=num_images, steps=steps)
    chosen = list(METHODS if methods is None else methods)
    load_weights(context, checkpoint)
    run = Understanding(context, num_images, layer, unit, steps, vgg_weights)
    directory = context.run_dir.plots / "understanding"
    written = 0
    for method in chosen:
        try:
            figure = run.figure(method)
        except SpecError as error:
            if method != "cam" or methods is not None:
                raise
            run.notes.append(f"cam skipped: {error.message}")  # not every net has a CAM
            continue
        save_figure(figure, directory / f"{method}.png", dpi=110)
        written += 1
    run.save_arrays(directory / "understanding.pt")
    for note in run.notes:
        print(f"understand: {note}")
    return {
        "understanding/figures": float(written),
        **{f"understanding/{name}": value for name, value in run.metrics.items()},
    }
