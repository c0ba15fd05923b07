"""Class subfolders of videos (UCF101 / Kinetics layout), read as clips in worker processes.

Layouts under ``root`` (as ``image_folder``'s, with videos for images)::

    root/<class>/<video>.mp4                    split by seed: test_fraction, then val_fraction
    root/train/<class>/<video>.avi              val/ and test/ optional (val: held out of train)
    root/<class>/<video>/00001.jpg ...          pre-extracted frames: a folder per video

With ``split_files: {train: trainlist01.txt, test: testlist01.txt}`` (UCF101's official splits,
paths relative to ``root`` or absolute) the listed videos make the train and test splits (a
listed path's first folder is its class; UCF101's class numbers are not read) and val is held
out of train. A listed video that is not there is found by its name in any case and with any
video suffix, or as a frame folder (``v_X_g01_c01.avi`` listed: ``v_x_g01_c01.mp4`` or
``v_X_g01_c01/``); none found fails the setup, naming it. A video is a file ending in .mp4, .avi, .mkv, .mov or .webm, or a folder of
JPEG/PNG frames.

Training reads one clip per video per epoch at a random start; val and test read ``num_clips``
evenly spaced clips per video (``video_index`` tells the task which clips share a video). Clip
sampling and padding: :mod:`visionflow.datamodules.video_clips`. With ``flow_frames: L > 0``
each clip also carries stacked optical flow ``[2L, H, W]`` from the cache in ``flow_dir``
(default ``<root>/.flow``; :mod:`visionflow.datamodules.video_flow`). A corrupt or truncated
file raises a DataError naming it, or with ``skip_bad_files: true`` its clip is left out of the
batch with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionflow.batches import VideoBatch, VideoDatasetInfo
from visionflow.datamodules.base import EpochSeeding
from visionflow.datamodules.image_folder import (
    DecodeFailure,
    ImageFolderDataModule,
    ImageFolderLoader,
    Sample,
)
from visionflow.datamodules.transforms.video import (
    ClipPipeline,
    augment_clip,
    clip_pipeline,
    write_clip,
    write_levels,
)
from visionflow.datamodules.video_clips import (
    Padding,
    check_clip_arguments,
    clip_frame_indices,
    clip_span,
    random_clip_start,
    uniform_clip_starts,
)
from visionflow.datamodules.video_decode import (
    VIDEO_SUFFIXES,
    count_frames,
    is_frame_folder,
    read_clip,
)
from visionflow.datamodules.video_flow import cached_flow, stack_flow
from visionflow.errors import DataError, SpecError
from visionflow.registry import DATAMODULES

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class ClipSampling:
    """``clip_length`` frames ``stride`` apart; ``num_clips`` per video in evaluation."""

    clip_length: int
    stride: int
    num_clips: int
    padding: Padding

    @property
    def span(self) -> int:
        return clip_span(self.clip_length, self.stride)


@dataclass(frozen=True)
class FlowSource:
    """Stacks of ``flow_frames`` fields from the cache ``cache_dir`` of the videos under ``root``."""

    root: Path
    cache_dir: Path
    flow_frames: int


@dataclass
class ClipSample:
    frames: np.ndarray  # [T, H, W, C] augmented; CollateClips writes them into the batch
    label: int
    video: int
    flow: torch.Tensor | None  # [2L, H, W]


class VideoClipDataset(Dataset):
    """Clips of ``samples`` (``(video path, label)``): in training item ``i`` is a random clip
    of video ``i``; in evaluation item ``i`` is clip ``i % num_clips`` of video
    ``i // num_clips``. Items are :class:`ClipSample` or :class:`DecodeFailure`."""

    def __init__(
        self,
        samples: list[Sample],
        pipeline: A.Compose,
        sampling: ClipSampling,
        flow: FlowSource | None,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
    ):
        self.samples, self.sampling, self.flow, self.train = samples, sampling, flow, train
        self.pipeline = clip_pipeline(pipeline)
        self.clips_per_video = 1 if train else sampling.num_clips
        self.seeding = EpochSeeding(seed, rank)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples) * self.clips_per_video

    def set_epoch(self, epoch: int) -> None:
        self.seeding.set_epoch(epoch)

    def __getitem__(self, index: int) -> ClipSample | DecodeFailure:
        if (seed := self.seeding.new_seed()) is not None:
            self.pipeline.set_random_seed(seed)
            self.rng = np.random.default_rng(seed)
        video, clip = divmod(index, self.clips_per_video)
        path, label = self.samples[video]
        try:
            frames, flow = self._read(Path(path), clip)
        except DataError as error:
            return DecodeFailure(error)
        frames, flow = augment_clip(self.pipeline, frames, flow)
        flow_tensor = None if flow is None else torch.from_numpy(flow).permute(2, 0, 1)
        return ClipSample(frames, label, video, flow_tensor)

    def _read(self, path: Path, clip: int) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 frames ``[T, H, W, 3]`` of clip ``clip`` and its flow stack ``[H, W, 2L]``."""
        sampling, num_frames = self.sampling, count_frames(path)
        if num_frames < 1:
            raise DataError(f"{path}: the video has no frames", hint="replace or delete the file")
        if self.train:
            start = random_clip_start(num_frames, sampling.span, self.rng)
        else:
            start = uniform_clip_starts(num_frames, sampling.span, sampling.num_clips)[clip]
        indices = clip_frame_indices(
            num_frames, sampling.clip_length, sampling.stride, start, sampling.padding
        )
        frames = read_clip(path, indices, size=self.pipeline.decode_size)
        if self.flow is None:
            return frames, None
        fields = cached_flow(path, self.flow.root, self.flow.cache_dir)
        return frames, stack_flow(fields, start, self.flow.flow_frames)


class CollateClips:
    """Gathers :class:`ClipSample` items into a :class:`VideoBatch`, each item's frames written
    straight into the batch: uint8 levels with ``pipeline``'s (its dataset's) normalization for
    the device, or normalized here when a transform made them float; a failed item is dropped
    with a warning when ``skip_bad_files``, else the batch becomes its DecodeFailure."""

    def __init__(self, skip_bad_files: bool, pipeline: ClipPipeline):
        self.skip_bad_files, self.pipeline = skip_bad_files, pipeline

    def __call__(self, samples: list[Any]) -> VideoBatch | DecodeFailure:
        failed = [s for s in samples if isinstance(s, DecodeFailure)]
        good = [s for s in samples if not isinstance(s, DecodeFailure)]
        if failed and (not self.skip_bad_files or not good):
            return failed[0]
        if failed:
            warnings.warn("skipping " + "; ".join(f.error.message for f in failed), stacklevel=2)
        flows = None if good[0].flow is None else torch.stack([s.flow for s in good])
        levels = all(self.pipeline.keeps_levels(s.frames) for s in good)
        return VideoBatch(
            clips=self._clips(good, levels),
            targets=torch.tensor([s.label for s in good], dtype=torch.int64),
            video_index=torch.tensor([s.video for s in good], dtype=torch.int64),
            flows=flows,
            normalization=torch.tensor(self.pipeline.normalization) if levels else None,
        )

    def _clips(self, samples: list[ClipSample], levels: bool) -> torch.Tensor:
        """uint8 levels or float32 normalized ``[B, C, T, H, W]``: every sample's frames written
        into one batch (no stack)."""
        count, height, width, channels = samples[0].frames.shape
        dtype = torch.uint8 if levels else torch.float32
        clips = torch.empty((len(samples), channels, count, height, width), dtype=dtype)
        for sample, out in zip(samples, clips.numpy(), strict=True):
            if levels:
                write_levels(sample.frames, out)
            else:
                write_clip(self.pipeline, sample.frames, out)
        return clips


@DATAMODULES.register("video_folder", batch=VideoBatch)
class VideoFolderDataModule(ImageFolderDataModule):
    """Class subfolders of videos or frame folders (flat, train/val/test, or UCF101 split
    files), read as clips ``[C, T, H, W]`` (and optional flow) in worker processes."""

    default_transforms = {"train": "video_flip_train", "eval": "video_eval"}

    def __init__(
        self,
        root: str,
        clip_length: int = 8,
        stride: int = 2,
        num_clips: int = 3,
        padding: Padding = "loop",
        flow_frames: int = 0,
        flow_dir: str | None = None,
        split_files: dict[str, str] | None = None,
        image_size: int = 112,
        test_fraction: float = 0.1,
        skip_bad_files: bool = False,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        transforms: dict | None = None,
        limit: int | None = None,
    ):
        check_clip_arguments(clip_length, stride, num_clips, padding)
        if flow_frames < 0:
            raise SpecError(f"flow_frames: must be >= 0, got {flow_frames}")
        _check_split_files(split_files)
        super().__init__(
            root,
            image_size=image_size,
            channels=3,
            test_fraction=test_fraction,
            skip_bad_files=skip_bad_files,
            mean=list(mean or KINETICS_MEAN),
            std=list(std or KINETICS_STD),
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            val_fraction=val_fraction,
            transforms=transforms,
            limit=limit,
        )
        self.sampling = ClipSampling(clip_length, stride, num_clips, padding)
        self.flow_frames = flow_frames
        self.flow_dir = Path(flow_dir) if flow_dir else self.root / ".flow"
        self.split_files = dict(split_files or {})

    @property
    def info(self) -> VideoDatasetInfo:
        height, width, channels = self.output_shapes["eval"]
        return VideoDatasetInfo(
            num_classes=len(self.class_names),
            class_names=self.class_names,
            in_channels=channels,
            image_size=(height, width),
            clip_length=self.sampling.clip_length,
            flow_frames=self.flow_frames,
        )

    def videos(self) -> list[Path]:
        """Every video of every split (each once), for ``precompute-flow``."""
        return sorted({Path(path) for split in self._splits.values() for path, _ in split})

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        if not self.split_files:
            return super().class_names
        return tuple(sorted({Path(line).parts[0] for line in self._listed("train")}))

    @cached_property
    def _splits(self) -> dict[str, list[Sample]]:
        if not self.split_files:
            return super()._splits
        index = {name: i for i, name in enumerate(self.class_names)}
        folders: dict[Path, dict[str, list[Path]]] = {}
        listed = {
            split: [
                (str(_stored_video(self._resolve(line), folders)), index[Path(line).parts[0]])
                for line in self._listed(split)
            ]
            for split in self.split_files
        }
        splits = {**self._split_by_seed(listed.pop("train"), {}), **listed}
        splits.setdefault("test", splits["val"])
        return splits

    def _listed(self, split: str) -> list[str]:
        """The video paths of a split file (first column of each non-empty line)."""
        path = self._resolve(self.split_files[split])
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise DataError(
                f"{path}: cannot read split file ({error.strerror})",
                hint=f"fix split_files.{split}",
            ) from None
        return [line.split()[0] for line in lines if line.strip()]

    def _resolve(self, path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else self.root / path

    def _scan(self, folder: Path) -> list[Sample]:
        """``(path, label)`` of every video file or frame folder in ``folder/<class>/``, sorted."""
        index = {name: i for i, name in enumerate(self.class_names)}
        samples = []
        for class_folder in sorted(
            p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            if class_folder.name not in index:
                raise DataError(
                    f"{class_folder}: class {class_folder.name!r} is not among the train classes",
                    hint="every split needs the train class folders",
                )
            samples += [
                (str(p), index[class_folder.name])
                for p in sorted(class_folder.iterdir())
                if p.suffix.lower() in VIDEO_SUFFIXES or is_frame_folder(p)
            ]
        if not samples:
            raise DataError(
                f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)} or frame "
                "folders) in class folders"
            )
        return samples

    def _build_dataset(self, split: str) -> VideoClipDataset:
        samples = self._splits[split]
        kept = self.limited(np.array([label for _, label in samples], dtype=np.int64))
        flow = FlowSource(self.root, self.flow_dir, self.flow_frames) if self.flow_frames else None
        return VideoClipDataset(
            [samples[i] for i in kept],
            self.pipelines[self.phase(split)],
            self.sampling,
            flow,
            train=split == "train",
            seed=self.seed,
            rank=self.rank,
        )

    def _dataloader(self, split: str, shuffle: bool) -> DataLoader:
        return self.make_loader(
            self.dataset(split),
            shuffle=shuffle,
            collate_fn=CollateClips(self.skip_bad_files, self.dataset(split).pipeline),
            num_workers=self.num_workers,
            pin_memory=False,
            loader_class=ImageFolderLoader,
        )


def _stored_video(listed: Path, folders: dict[Path, dict[str, list[Path]]]) -> Path:
    """The video a split file lists as ``listed``: that path when it exists, else the video
    file or frame folder beside it of the same name but for suffix and case (UCF101's lists name
    .avi files; converted copies or extracted frames keep the name). ``folders`` caches each
    folder's videos by lower-case name; DataError when no single one matches."""
    if listed.exists():
        return listed
    if listed.parent not in folders:
        folders[listed.parent] = _videos_by_name(listed.parent)
    matches = folders[listed.parent].get(listed.stem.lower(), [])
    if len(matches) != 1:
        found = f"found {', '.join(p.name for p in matches)}" if matches else "no such video"
        raise DataError(
            f"{listed}: listed in a split file; {found}", hint="fix the split file or the data"
        )
    return matches[0]


def _videos_by_name(folder: Path) -> dict[str, list[Path]]:
    """``{lower-case name without suffix: [video files and frame folders]}`` in ``folder``."""
    videos: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_frame_folder(path):
            videos.setdefault(path.name.lower(), []).append(path)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.setdefault(path.stem.lower(), []).append(path)
    return videos


def _check_split_files(split_files: dict[str, str] | None) -> None:
    if split_files is None:
        return
    unknown = set(split_files) - {"train", "test"}
    if unknown or "train" not in split_files:
        raise SpecError(
            f"split_files: expected keys train and optionally test, got {sorted(split_files)}",
            hint="e.g. {train: trainlist01.txt, test: testlist01.txt}",
        )
