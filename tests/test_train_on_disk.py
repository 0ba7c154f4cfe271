"""`unitlab train` on the paper's datasets as they lie on disk (tiny fixtures in the real
layouts, and the real GTA -> Cityscapes frames of ../shared/data): a few steps, the report,
the sample grid, and a resume that continues exactly (the batches of step k depend on the seed
and k alone, whichever DataLoader worker reads them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unitlab.cli import main
from unitlab.data.samples import write_celeba_sample, write_maps_sample


@pytest.fixture(scope="module")
def maps_root(tmp_path_factory) -> Path:
    return write_maps_sample(tmp_path_factory.mktemp("data") / "maps", n_train=6, n_val=4)


def train(tmp_path: Path, *args: str) -> int:
    return main(["train", "--out", str(tmp_path), "--no-progress", *args])


def losses(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_the_maps_preset_trains_and_scores_on_a_maps_folder(tmp_path, maps_root, capsys):
    """The paper's maps preset (its network at 64 px instead of 256, for the CPU's sake):
    training satellites vs validation maps, scored on the validation pairs."""
    code = train(tmp_path, "--preset", "maps256", "--data-root", str(maps_root), "--steps", "2",
                 "--set", "model.image_size=64", "--set", "data.workers=1")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "satellite->map pixel accuracy on 4 held-out pairs" in out
    metrics = json.loads((tmp_path / "maps256" / "metrics.json").read_text())
    assert metrics["n_pairs"] == 4 and 0 <= metrics["unit"] <= 1
    assert metrics["constant"] > 0.3  # the sample's maps are mostly land: a real baseline
    assert (tmp_path / "maps256" / "samples" / "step_000002.png").is_file()
    config = json.loads((tmp_path / "maps256" / "config.json").read_text())
    assert config["data"]["source"] == "maps" and config["data"]["root"] == str(maps_root)


def test_a_run_on_disk_resumes_exactly_even_from_another_data_root(tmp_path, maps_root):
    tiny = ["--preset", "tiny", "--set", "data.source=maps", "--set", "data.workers=2"]
    assert train(tmp_path, *tiny, "--data-root", str(maps_root), "--name", "whole",
                 "--steps", "4") == 0  # fmt: skip
    assert train(tmp_path, *tiny, "--data-root", str(maps_root), "--name", "split",
                 "--steps", "2") == 0  # fmt: skip
    moved = tmp_path / "moved"
    moved.symlink_to(maps_root)  # the same data, somewhere else: a resume may say so
    assert train(tmp_path, "--name", "split", "--resume", "--steps", "4",
                 "--data-root", str(moved)) == 0  # fmt: skip
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")


@pytest.mark.parametrize("source", ["folders", "celeba"])
def test_unpaired_datasets_train_and_say_there_is_nothing_to_score(
    tmp_path, shared_data, source, capsys
):
    if source == "folders":
        root, extra = shared_data / "gta2city", []  # real frames, 933x512 and 1024x512
    else:
        root, extra = write_celeba_sample(tmp_path / "celeba"), ["--set", "data.attribute=Smiling"]
    args = ["--preset", "tiny", "--set", f"data.source={source}", "--data-root", str(root)]
    assert train(tmp_path, *args, *extra, "--steps", "2", "--set", "data.workers=0") == 0
    assert "no paired held-out images: no pixel accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "tiny" / "metrics.json").read_text()) == {"n_pairs": 0}
    assert train(tmp_path, *args, *extra, "--name", "curve", "--eval-every", "1") == 2
    assert "--eval-every needs paired held-out images" in capsys.readouterr().err


def test_a_missing_dataset_folder_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert train(tmp_path, "--preset", "tiny", "--set", "data.source=maps",
                 "--data-root", str(missing)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1
    assert not (tmp_path / "tiny" / "checkpoint.pt").exists()
