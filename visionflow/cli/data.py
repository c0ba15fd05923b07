"""``visionflow data``: make or convert datasets."""

from __future__ import annotations

import argparse

from visionflow.argtypes import int_in
from visionflow.cli import precompute_flow

DATA_EXAMPLES = """\
examples:
  visionflow data make-shapes data/shapes --images 200 --image-size 128 --seed 0
"""


def add_data_commands(commands, formatter) -> None:
    data = commands.add_parser(
        "data", help="make or convert datasets", epilog=DATA_EXAMPLES, formatter_class=formatter
    )
    actions = data.add_subparsers(dest="data_action", metavar="ACTION", required=True)
    shapes = actions.add_parser(
        "make-shapes",
        epilog=DATA_EXAMPLES,
        formatter_class=formatter,
        help="write a seeded COCO dataset of circles, squares and "
        "triangles (PNGs + instances JSON with boxes and masks)",
    )
    shapes.add_argument("out_dir", metavar="OUT_DIR")
    shapes.add_argument("--images", type=int, required=True, metavar="N")
    shapes.add_argument("--image-size", type=int, default=128, metavar="PX")
    shapes.add_argument("--seed", type=int_in(0), default=0)
    precompute_flow.add_arguments(
        actions.add_parser(
            "precompute-flow",
            help="cache the optical flow of every video under a folder",
            epilog=f"example:\n  {precompute_flow.EXAMPLE}",
            formatter_class=formatter,
        )
    )


def data_command(args: argparse.Namespace) -> int:
    if args.data_action == "precompute-flow":
        return precompute_flow.run(args)
    from visionflow.datamodules import make_shapes_dataset
    from visionflow.errors import writing_to

    with writing_to("OUT_DIR", args.out_dir):
        path = make_shapes_dataset(
            args.out_dir, args.images, seed=args.seed, image_size=args.image_size
        )
    print(f"wrote {args.images} images and {path}")
    return 0
