"""The committed test data: its fixtures fail (never skip) when a file is missing."""

import pytest

from tests import conftest


def test_missing_test_data_fails_instead_of_skipping(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "TEST_DATA_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="missing: the test data is part of"):
        conftest._data_dir("coco_sample", "person_keypoints_sample.json")


@pytest.mark.parametrize("folder", ["coco_sample", "official_hrnet", "psa_reference"])
def test_each_data_folder_has_its_readme(repo_root, folder):
    assert (repo_root / "tests" / "data" / folder / "README.md").is_file()
