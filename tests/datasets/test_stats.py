"""Dataset statistics tables/plot and the ``cvlab flir`` commands (run in-process)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cvlab.cli import main
from cvlab.datasets import stats
from cvlab.viz.plots import plot_dataset_stats


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    assert (
        main(
            ["flir", "synth", "--layout", "v2", "--num-images", "8", "--output", str(base / "src")]
        )
        == 0
    )
    code = main(
        ["flir", "prepare", str(base / "src"), str(base / "out"), "--classes", "person,car",
         "--num-shards", "2", "--val-split", "25", "--workers", "1"]
    )  # fmt: skip
    assert code == 0
    return base / "out"


def test_cli_wrote_the_dataset(prepared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list((prepared_dir / "images").glob("*.jpg"))) == 8
    assert len(list((prepared_dir / "tfrecords").glob("flir-fold-*"))) == 4
    plot = prepared_dir / "stats.png"
    assert main(["flir", "stats", str(prepared_dir), "--tfrecords", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "person" in out and "box height" in out and plot.stat().st_size > 1000


def test_stats_tables_agree_for_labels_and_tfrecords(prepared_dir: Path) -> None:
    from cvlab.formats.tfrecords import read_tfrecords

    from_labels = stats.labels_dataframe(prepared_dir / "labels")
    from_records = read_tfrecords(prepared_dir / "tfrecords")
    pd.testing.assert_series_equal(
        stats.class_counts(from_labels), stats.class_counts(from_records)
    )
    per_image = stats.boxes_per_image(from_labels)
    assert per_image.sum() == 8
    assert (per_image.index * per_image).sum() == stats.class_counts(from_labels).sum()
    hist = stats.box_size_histogram(from_labels)
    assert hist.to_numpy().sum() == stats.class_counts(from_labels).sum()
    assert set(hist.columns) == {"car", "person"}
    summary = stats.summarize(from_labels)
    assert (summary.median_height > 0).all()
    fig = plot_dataset_stats(from_labels)
    assert len(fig.axes) == 3 and fig.axes[0].patches


def test_bad_size_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["flir", "prepare", "a", "b", "--size", "960by544"])
    assert "960x544" in capsys.readouterr().err


@pytest.mark.parametrize("tfrecords", [False, True])
def test_stats_of_a_mistyped_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tfrecords: bool
) -> None:
    """Issue 20 item 10: ``flir stats nosuch`` (or an empty folder) is exit 2 and one line,
    not empty tables and exit 0."""
    (tmp_path / "empty" / "labels").mkdir(parents=True)
    for folder in (tmp_path / "nosuch", tmp_path / "empty"):
        assert main(["flir", "stats", str(folder)] + ["--tfrecords"] * tfrecords) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and str(folder) in captured.err
        assert len(captured.err.strip().splitlines()) == 1
