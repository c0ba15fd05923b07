"""Triangle mesh of an occupancy (or any scalar) grid's level set, by marching cubes
(scikit-image's Lewiner variant, imported when called).

    verts, faces = mesh_from_grid(probabilities [R, R, R], level=0.5)   # float32 [V, 3], int64 [F, 3]

The grid holds values at cell centres in PyTorch3D's ``[D, H, W]`` order over ``bounds`` on
every axis (cell ``[d, h, w]`` centred at ``x = lo + (w + 0.5) s``, ``y`` by ``h``, ``z`` by
``d``, ``s = (hi - lo) / R``), as :mod:`visionflow.ops.voxelize` lays grids out; the vertices
come back in ``(x, y, z)`` in that frame. The grid is padded with a layer of ``-inf``-like
empty values so that a surface touching the border is closed.
"""

from __future__ import annotations

import numpy as np
import torch


def mesh_from_grid(
    grid: torch.Tensor, level: float = 0.5, bounds: tuple[float, float] = (-1.0, 1.0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(verts float32 [V, 3], faces int64 [F, 3])`` of the surface where ``grid [D, H, W]``
    crosses ``level`` (faces wound counter-clockwise seen from the side below ``level``, i.e.
    outside an occupancy); an empty mesh (``[0, 3]``, ``[0, 3]``) when it never crosses."""
    from skimage.measure import marching_cubes

    if grid.ndim != 3:
        raise ValueError(f"grid: expected [D, H, W], got {tuple(grid.shape)}")
    values = grid.detach().cpu().double().numpy()
    floor = min(float(values.min()), level) - 1.0
    padded = np.pad(values, 1, constant_values=floor)
    if not (padded.max() > level > padded.min()):
        return torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64)
    verts, faces, _, _ = marching_cubes(padded, level, method="lewiner")  # (d, h, w) indices
    lo, hi = bounds
    sizes = (hi - lo) / torch.tensor(grid.shape, dtype=torch.float64)  # per (d, h, w)
    coordinates = lo + (torch.from_numpy(verts.copy()) - 1 + 0.5) * sizes  # undo the padding
    return coordinates.flip(1).float(), torch.from_numpy(faces.astype(np.int64))
