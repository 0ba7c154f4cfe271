"""The command line end to end on a tiny run, and its error messages."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from unitlab.cli import main


def train_tiny(tmp_path, *extra):
    return main(["train", "--preset", "tiny", "--out", str(tmp_path), "--no-progress", *extra])


def test_train_then_translate_a_png(tmp_path, capsys):
    assert train_tiny(tmp_path, "--steps", "6") == 0
    out = capsys.readouterr().out
    assert "pixel accuracy" in out and "identity" in out and "constant" in out
    run = tmp_path / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["unit"] <= 1 and metrics["n_pairs"] == 16
    assert (run / "checkpoint.pt").is_file() and (run / "config.json").is_file()

    image = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    mpimg.imsave(tmp_path / "in.png", image)
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(run),
                "--direction",
                "a2b",
                str(tmp_path / "in.png"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    result = mpimg.imread(tmp_path / "out" / "in_a2b.png")
    assert result.shape[:2] == (16, 16)
    capsys.readouterr()

    assert main(["evaluate", "--checkpoint", str(run), "--detail"]) == 0
    out = capsys.readouterr().out
    assert f"UNIT (this run)                              {metrics['unit']:.3f}" in out
    assert all(name in out for name in ("land", "major road", "water"))
    rows = [line.split() for line in out.splitlines()[-3:]]
    assert [int(r[0]) for r in rows] == [16, 24, 32]
    unit, constant = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
    assert unit == sorted(unit) and constant == sorted(constant)  # looser never scores less
    assert unit[0] == round(metrics["unit"], 3) and constant[0] == round(metrics["constant"], 3)


def test_resume_extends_a_run(tmp_path, capsys):
    assert train_tiny(tmp_path, "--steps", "4") == 0
    assert train_tiny(tmp_path, "--steps", "4") == 2  # refuses to overwrite
    assert "already holds a run" in capsys.readouterr().err
    assert train_tiny(tmp_path, "--resume", "--steps", "6") == 0
    assert "resuming" in capsys.readouterr().out
    log = (tmp_path / "tiny" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4, 5, 6]


def test_unknown_preset_and_option_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--preset", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_unknown_config_field_is_named(tmp_path, capsys):
    assert train_tiny(tmp_path, "--set", "model.n_sharde=0") == 2
    assert "unknown config field 'model.n_sharde'" in capsys.readouterr().err
    assert train_tiny(tmp_path, "--set", "model.n_shared=many") == 2
    assert "cannot parse 'many' for model.n_shared" in capsys.readouterr().err


def test_translate_reports_missing_inputs_and_checkpoints(tmp_path, capsys):
    assert main(["translate", "--checkpoint", str(tmp_path), "x.png", "--out", "o"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert train_tiny(tmp_path, "--steps", "2") == 0
    capsys.readouterr()
    missing = tmp_path / "missing.png"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(tmp_path / "tiny"),
                str(missing),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert f"input {missing} does not exist" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(tmp_path / "tiny"),
                str(corrupt),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "corrupt.png" in capsys.readouterr().err


def test_presets_and_help(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = lines[1 : next(i for i, line in enumerate(lines) if line.startswith("GFLOP/it"))]
    rows = {line.split()[0]: line.split() for line in table}
    assert {"mapworld32", "maps256", "streets256", "faces128"} <= rows.keys()
    assert rows["maps256"][1:3] == ["maps", "256"] and rows["faces128"][1] == "celeba"
    # what each costs: parameters, GFLOP per iteration, and the run's total grow with the size
    gflop = {name: float(row[5]) for name, row in rows.items()}
    assert gflop["paper64"] * 15 < gflop["paper256"] < gflop["paper64"] * 17  # ~16x the pixels
    assert "svhn-mnist" in out and "MNIST doubled with inverted copies" in out  # adaptation
    for command in ("train", "translate", "evaluate", "ceiling", "presets"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0


def test_train_eval_every_prints_and_logs_the_curve(tmp_path, capsys):
    assert train_tiny(tmp_path, "--steps", "5", "--eval-every", "2") == 0
    lines = (tmp_path / "tiny" / "curve.jsonl").read_text().splitlines()
    curve = [json.loads(line) for line in lines]
    assert [p["step"] for p in curve] == [2, 4, 5]
    assert all(0 <= p["accuracy"] <= 1 for p in curve)
    assert "step      4  held-out pixel accuracy" in capsys.readouterr().out
    assert train_tiny(tmp_path, "--steps", "5", "--eval-every", "-1", "--name", "bad") == 2


@pytest.mark.parametrize(
    "override,named",
    [
        ("checkpoint_every=0", "checkpoint_every=0"),
        ("log_every=0", "log_every=0"),
        ("sample_every=0", "sample_every=0"),
        ("data.train_size=0", "data.train_size=0"),
        ("model.d_max_channels=0", "model.d_max_channels"),
        ("model.n_downsample=-1", "model.n_downsample=-1"),
        ("optim.lr=-0.1", "optim.lr=-0.1"),
        ("data.zoom=0", "data.zoom=0"),
        ("data.look=cartoon", "data.look"),
    ],
)
def test_values_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, override, named):
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "tiny").exists()  # refused before anything was written


def test_a_dataset_on_disk_needs_its_folder_and_faces_an_attribute(tmp_path, capsys):
    for preset, message in (
        ("maps256", "data.source=maps reads a dataset on disk: give its folder with --data-root"),
        ("streets256", "data.source=folders reads a dataset on disk"),
    ):
        assert train_tiny(tmp_path, "--preset", preset) == 2
        assert message in capsys.readouterr().err
    code = train_tiny(tmp_path, "--preset", "faces128", "--data-root", str(tmp_path),
                      "--set", "data.attribute=")  # fmt: skip
    assert code == 2
    assert "data.source=celeba needs data.attribute" in capsys.readouterr().err
    assert train_tiny(tmp_path, "--set", "data.source=imagenet") == 2
    assert "data.source='imagenet' must be one of mapworld, maps, folders, celeba" in (
        capsys.readouterr().err
    )
    assert train_tiny(tmp_path, "--set", "precision=fp16") == 2
    assert "precision='fp16' must be fp32 or bf16" in capsys.readouterr().err
