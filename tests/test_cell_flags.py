import numpy as np
import pandas as pd
import pytest

from napari_cellae.pipeline.cell_flags import without_signal, yes_no


def test_yes_no_takes_bools_and_zero_one_numbers():
    obs = pd.DataFrame({"control": [True, False, True], "novel": [0, 1, 0]})
    assert yes_no(obs, "control", "cells.h5ad").tolist() == [True, False, True]
    assert yes_no(obs, "novel", "cells.h5ad").tolist() == [False, True, False]


@pytest.mark.parametrize("values", [["False", "True"], [True, None], [0, 2]])
def test_yes_no_refuses_anything_else_naming_the_file_and_column(values):
    obs = pd.DataFrame({"control": values})
    with pytest.raises(ValueError, match=r"cells\.h5ad: column control must be True or False"):
        yes_no(obs, "control", "cells.h5ad")


def test_without_signal_is_none_for_tables_written_before_the_column():
    assert without_signal(pd.DataFrame({"control": [True, False]})).tolist() == [False, False]
    marked = pd.DataFrame({"no_signal": np.array([False, True])})
    assert without_signal(marked).tolist() == [False, True]
    with pytest.raises(ValueError, match=r"f\.h5ad: column no_signal"):
        without_signal(pd.DataFrame({"no_signal": ["yes", "no"]}), "f.h5ad")
