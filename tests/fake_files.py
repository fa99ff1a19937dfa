"""Generated stand-ins for licensed files, in their real layouts (nothing licensed is committed)."""

import numpy as np

SMPLX_NUM_VERTS = 10475
SMPLX_NUM_FACES = 20908


def write_fake_smplx_npz(path, seed=0, num_verts=SMPLX_NUM_VERTS):
  """An SMPL-X model npz with the released field names, shapes and dtypes but random content.

  The joint regressor is a convex combination of ~30 vertices per joint scattered around a plausible
  joint position, so rest joints look like a body; the rest (blend shapes, skinning weights,
  landmarks) is random but shape-correct, enough for the `smplx` package to build a mesh.
  """
  from regennet_jax.body import skeleton
  rng = np.random.default_rng(seed)
  joints = skeleton.builtin_rest_joints() + rng.normal(0, 0.01, (55, 3)).astype(np.float32)
  owner = rng.integers(0, 55, num_verts)
  v_template = (joints[owner] + rng.normal(0, 0.03, (num_verts, 3))).astype(np.float32)
  regressor = np.zeros((55, num_verts), np.float32)
  for j in range(55):
    ids = np.flatnonzero(owner == j)[:30]
    w = rng.random(len(ids)) + 0.1
    regressor[j, ids] = w / w.sum()
  weights = rng.random((num_verts, 55)).astype(np.float32) ** 8
  weights[np.arange(num_verts), owner] += 1.0
  weights /= weights.sum(1, keepdims=True)
  kintree = np.stack([np.array(skeleton.PARENTS, np.int64) % 2**32, np.arange(55)]).astype(np.uint32)
  np.savez(
      path,
      v_template=v_template,
      f=rng.integers(0, num_verts, (SMPLX_NUM_FACES, 3)).astype(np.int32),
      J_regressor=regressor,
      kintree_table=kintree,
      weights=weights,
      shapedirs=(rng.normal(0, 0.01, (num_verts, 3, 400))).astype(np.float32),
      posedirs=(rng.normal(0, 0.001, (num_verts, 3, 486))).astype(np.float32),
      hands_componentsl=rng.normal(0, 0.1, (45, 45)).astype(np.float32),
      hands_componentsr=rng.normal(0, 0.1, (45, 45)).astype(np.float32),
      hands_meanl=rng.normal(0, 0.1, 45).astype(np.float32),
      hands_meanr=rng.normal(0, 0.1, 45).astype(np.float32),
      lmk_faces_idx=rng.integers(0, SMPLX_NUM_FACES, 51).astype(np.int64),
      lmk_bary_coords=rng.dirichlet(np.ones(3), 51).astype(np.float32),
      dynamic_lmk_faces_idx=rng.integers(0, SMPLX_NUM_FACES, (79, 17)).astype(np.int64),
      dynamic_lmk_bary_coords=rng.dirichlet(np.ones(3), (79, 17)).astype(np.float32),
  )
  return path
