"""Fixtures every test module can use. The repository root is on sys.path through pytest's
`pythonpath` setting in pyproject.toml."""

import os

# Tests run on the CPU; several forced devices let sharding tests run without accelerators.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import pytest  # noqa: E402

from tests import fake_files  # noqa: E402


@pytest.fixture(scope='session')
def smplx_npz(tmp_path_factory):
  return fake_files.write_fake_smplx_npz(
      tmp_path_factory.mktemp('body_models') / 'SMPLX_NEUTRAL.npz')
