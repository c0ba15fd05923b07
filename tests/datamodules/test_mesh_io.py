"""Mesh and point-cloud readers: real files from ../shared/data, written files, bad data."""

from __future__ import annotations

import numpy as np
import pytest

from visionflow.datamodules.mesh_io import read_mesh, read_point_cloud, write_mesh
from visionflow.errors import DataError


@pytest.mark.parametrize(
    "name, verts, faces",
    [
        ("cheburashka.off", 6669, 13334),
        ("teapot.obj", 3644, 6320),
        ("suzanne.obj", 507, 968),  # 468 quads + 32 triangles, fanned
        ("pytorch3d_cow/cow.obj", 2930, 5856),
        ("stanford_bunny.ply", 35947, 69451),
    ],
)
def test_real_meshes(shared_data, name, verts, faces):
    vertices, triangles = read_mesh(shared_data / "meshes" / name)
    assert vertices.shape == (verts, 3) and triangles.shape == (faces, 3)
    assert vertices.dtype == np.float32 and triangles.max() < verts


def test_triangle_strips_are_refused_with_the_file_name(shared_data):
    with pytest.raises(DataError, match="cow_tristrips.ply: empty mesh"):
        read_mesh(shared_data / "meshes" / "cow_tristrips.ply")


@pytest.mark.parametrize("name, count", [("bunny.pcd", 397), ("bunny_pc.ply", 4093)])
def test_real_point_clouds(shared_data, name, count):
    assert read_point_cloud(shared_data / "pointclouds" / name).shape == (count, 3)


def test_written_mesh_reads_back(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    path = write_mesh(tmp_path / "tetra.obj", verts, faces)
    read_verts, read_faces = read_mesh(path)
    np.testing.assert_allclose(read_verts, verts)
    np.testing.assert_array_equal(read_faces, faces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tetra.obj"]  # no temporary left


def test_the_same_mesh_written_twice_is_the_same_bytes(tmp_path):
    """Generated datasets are byte-identical for a seed: no temporary name in the .obj header."""
    verts, faces = np.eye(3), np.array([[0, 1, 2]])
    first = write_mesh(tmp_path / "a" / "mesh.obj", verts, faces).read_bytes()
    assert write_mesh(tmp_path / "b" / "mesh.obj", verts, faces).read_bytes() == first


@pytest.mark.parametrize(
    "text, message",
    [
        ("OFF\n0 0 0\n", "empty mesh"),
        ("OFF\n3 1 0\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n", "vertex 1 has a NaN"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "indexes vertex 7"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 1\n", "every face is degenerate"),
        ("OFF\n3 2 0\n0 0 0\n1 0 0\n", "malformed OFF"),
        ("PLY\n", "not an OFF file"),
    ],
)
def test_bad_meshes_raise_data_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(DataError, match=f"bad.off: .*{message}"):
        read_mesh(path)


def test_modelnet_style_header_and_degenerate_faces(tmp_path):
    path = tmp_path / "glued.off"
    path.write_text("OFF4 3 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n4 0 1 2 3\n3 0 0 1\n")
    verts, faces = read_mesh(path)
    assert verts.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_mesh(tmp_path / "absent.obj")
    with pytest.raises(DataError, match="not a mesh file"):
        read_mesh(tmp_path / "model.fbx")
    with pytest.raises(DataError, match="not a point-cloud file"):
        read_point_cloud(tmp_path / "cloud.las")
