"""line_chart: the notebooks' curves as bqplot figures carry exactly the data given, labelled."""
import bqplot as bq
import numpy as np
import pytest

from ipynetviz.engine.errors import InputError, SettingError
from ipynetviz.widgets.charts import line_chart


def test_curves_carry_the_data_their_labels_and_axes():
    fig = line_chart({"train": [0.9, 0.5, 0.3], "test": [1.0, np.nan, 0.6, 0.5]}, title="loss", x_label="epoch",
                     y_label="loss", hlines={"chance": 0.8}, y_range=(0, 1), y_format=".0%")
    train, test, chance = fig.marks
    assert train.x.tolist() == [0, 1, 2] and train.y.tolist() == [0.9, 0.5, 0.3]
    assert test.x.tolist() == [0, 1, 2, 3] and np.isnan(test.y[1])
    assert chance.labels == ["chance"] and chance.y.tolist() == [0.8, 0.8] and chance.line_style == "dashed"
    assert chance.x.tolist() == [0, 3]  # across the whole x range of the data
    assert [a.label for a in fig.axes] == ["epoch", "loss"] and fig.axes[1].tick_format == ".0%"
    assert (train.scales["y"].min, train.scales["y"].max) == (0, 1)
    assert fig.title == "loss" and all(m.display_legend for m in fig.marks)
    assert len({m.colors[0] for m in (train, test)}) == 2


def test_x_per_series_and_stretched_series():
    fig = line_chart({"a": [1, 2], "b": [3, 4, 5]}, x={"a": [10, 20], "b": [0, 5, 10]})
    assert fig.marks[0].x.tolist() == [10, 20] and fig.marks[1].x.tolist() == [0, 5, 10]
    fig = line_chart({"a": [0.7, 0.7, 0.7], "b": np.full(9, 0.3)}, x_fraction=True, hlines=[0.9])
    for m in fig.marks[:2]:
        assert m.x[0] == 0 and m.x[-1] == 1
    assert fig.marks[2].labels == ["0.9"]
    assert isinstance(fig, bq.Figure)


def test_bad_input_names_the_fix():
    with pytest.raises(InputError, match="at least one series"):
        line_chart({})
    with pytest.raises(InputError, match="one x per value"):
        line_chart({"a": [1, 2, 3]}, x=[0, 1])
    with pytest.raises(SettingError, match="high > low"):
        line_chart({"a": [1]}, y_range=(1, 0))
