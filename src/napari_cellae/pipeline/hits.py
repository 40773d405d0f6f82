"""Hit lists: positions or conditions ranked by their share of novel cells.

Works on a cell table (the ``obs`` of a ``cellae`` AnnData file, or the widget's table):
one row per cell with ``position``, ``well``, ``condition``, ``control`` and ``novel``.
Where ``novel`` is missing it is derived from stored ``novelty`` scores, or, failing that,
computed from the features. :func:`hit_list` is what ``cellae hits`` and the widget's hit
table both show.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.hit_statistics import frame_weights, hit_table
from napari_cellae.core.novel_bar import novel_bar
from napari_cellae.core.novelty import NOVEL_PERCENTILE
from napari_cellae.io.definition import shown_name
from napari_cellae.pipeline.cell_flags import without_signal, yes_no

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae.pipeline.discovery import DiscoveryOptions

__all__ = ["HITS_NEED", "HIT_BY", "hit_list", "novel_cells"]

HIT_BY = ("position", "condition")
# Columns `cellae hits` needs in the cell table; the control flag may also come from the
# mapping's "group" column.
HITS_NEED = ("position", "well", "condition", "control")


def _missing(obs: pd.DataFrame, source: str, have_features: bool) -> None:
    """Raise naming every needed column that ``obs`` lacks."""
    columns = set(obs.columns)
    if "group" in columns:  # the control flag can come from the mapping's Group
        columns.add("control")
    needed = [c for c in HITS_NEED if c not in columns]
    if "novel" not in columns and "novelty" not in columns and not have_features:
        needed.append("novel (or novelty, or the features in X)")
    if needed:
        found = ", ".join(map(str, obs.columns)) or "none"
        raise ValueError(
            f"{source}: cellae hits needs the cell column(s) {', '.join(needed)}, which the "
            f"file does not have (obs columns: {found}); write the file with "
            "'cellae encode FILE.ch5 --model M --mapping MAP --out cells.h5ad'"
        )


def _scores(obs: pd.DataFrame, source: str) -> np.ndarray:
    """The ``novelty`` column as finite numbers.

    A NaN or infinite score made the controls' percentile NaN or infinite, so no cell was
    novel and the hit table ranked nothing, without a word.
    """
    import pandas as pd

    try:
        scores = np.asarray(obs["novelty"], np.float64)
    except (TypeError, ValueError):  # name a value that is no number, not the first one
        values = obs["novelty"].astype(object)
        bad = np.flatnonzero(pd.to_numeric(values, errors="coerce").isna().to_numpy())
        first = bad[0] if len(bad) else 0
        raise ValueError(
            f"{source}: column novelty must hold numbers, found {values.iloc[first]!r} (cell "
            f"{shown_name(str(obs.index[first]))}, {max(len(bad), 1)} cell(s))"
        ) from None
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"{source}: {int(bad.sum())} cell(s) have a NaN or infinite novelty score (first: cell"
            f" {shown_name(str(obs.index[np.argmax(bad)]))}); write the file again with"
            " 'cellae encode'"
        )
    return scores


def _controls(obs: pd.DataFrame, control_token: str, source: str) -> np.ndarray:
    if "control" in obs:
        return yes_no(obs, "control", source)
    token = control_token.strip().lower()
    if not token:  # every group starts with ""
        raise ValueError(
            f"{source}: the control token is empty, so every cell would count as a negative "
            "control; give the group value that marks them (e.g. --control-token neg)"
        )
    return obs["group"].astype(str).str.strip().str.lower().str.startswith(token).to_numpy()


def _complete(obs: pd.DataFrame, column: str, source: str) -> None:
    """Refuse cells whose ``column`` is missing (or, for a position or well, blank text).

    A missing value became the text "nan", a hit of its own; a blank position or well (how
    a missing text is often saved, as anndata cannot write None) a row named "".
    """
    import pandas as pd

    values = obs[column]
    missing = values.isna().to_numpy()
    if column in ("position", "well") and not missing.all():
        codes, uniques = pd.factorize(values)  # the distinct values as text, not every cell's
        blank = np.array([str(v).strip() == "" for v in uniques], bool)
        missing |= (codes >= 0) & blank[np.maximum(codes, 0)]
    where = np.flatnonzero(missing)
    if len(where):
        raise ValueError(
            f"{source}: column {column} is missing for {len(where)} cell(s), e.g. "
            f"{obs.index[where[0]]!r}; fill it in or drop those cells"
        )


def novel_cells(
    obs: pd.DataFrame,
    features: np.ndarray | None = None,
    percentile: float | None = None,
    options: DiscoveryOptions | None = None,
    control_token: str = "neg",
    source: str = "the cell table",
    views: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Which cells are novel, and how that was decided.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cell table.
    features : ndarray (N, F), optional
        Used only when ``obs`` holds neither ``novel`` nor ``novelty``.
    percentile : float, optional
        Re-threshold the stored ``novelty`` scores at this percentile of the control
        cells' scores; None keeps the stored ``novel`` flags.
    options : DiscoveryOptions, optional
        How to score novelty when it has to be computed from ``features``.
    control_token : str
        With a ``group`` column but no ``control`` column: groups starting with this token
        are the negative controls.
    source : str
        Named in messages (the file).
    views : list of ndarray of int, optional
        Feature columns scored apart when novelty is computed from ``features``
        (:func:`napari_cellae.core.morphology.novelty_views`).

    Returns
    -------
    novel : ndarray (N,) bool
    scores : ndarray (N,) float or None
    how : str
        One line for the user.

    Raises
    ------
    ValueError
        Naming the missing columns, or saying that there are no control cells.
    """
    from napari_cellae.pipeline.discovery import DiscoveryOptions, discover

    _missing(obs, source, features is not None)
    if obs.empty:
        raise ValueError(f"{source}: the cell table holds no cells")
    controls = _controls(obs, control_token, source)
    no_signal = without_signal(obs, source)
    if not controls.any():
        raise ValueError(
            f"{source}: no cell is a negative control (column "
            f"{'control' if 'control' in obs else 'group'}); hits are measured against the "
            "control wells: encode with --mapping, whose Group column marks them"
        )
    if controls.all():  # nothing left to rank: the table listed only controls, without a word
        where = (
            "column control" if "control" in obs else f"every group starts with {control_token!r}"
        )
        raise ValueError(
            f"{source}: every cell is a negative control ({where}); hits are measured against "
            "the control wells, so there is nothing to rank"
        )
    if "novelty" in obs and (percentile is not None or "novel" not in obs):
        _two_controls(controls, source, no_signal)  # one control cell's score made the bar
        scores = _scores(obs, source)
        p = NOVEL_PERCENTILE if percentile is None else percentile
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be in 0..100, got {p}")
        novel = novel_bar(scores, controls & ~no_signal, p)[1] & ~no_signal
        return novel, scores, f"novel: above the controls' {p:g}th percentile"
    if "novel" in obs:
        if percentile is not None:  # only flags: nothing to draw another bar through
            raise ValueError(
                f"{source}: holds which cells are novel (column novel) but not their scores "
                "(column novelty), so the novelty percentile cannot be changed; leave it out"
            )
        scores = _scores(obs, source) if "novelty" in obs else None
        return yes_no(obs, "novel", source) & ~no_signal, scores, "novel: as stored in the file"
    base = options or DiscoveryOptions()
    if percentile is not None:
        from dataclasses import replace

        base = replace(base, percentile=percentile)
    _two_controls(controls, source, no_signal)  # discover() would score nothing
    if hasattr(features, "toarray"):  # a sparse X, as scanpy often saves
        features = features.toarray()
    try:
        found = discover(np.asarray(features), obs.assign(control=controls), base, views)
    except ValueError as exc:  # e.g. NaN features: say which file holds them
        raise ValueError(f"{source}: {exc}") from None
    assert found.novelty is not None  # two or more controls
    for text in found.novelty_notes:  # discover() keeps them as notes: 'cellae hits' said none
        warnings.warn(f"{source}: {text}", stacklevel=2)
    return (
        found.novelty.novel,
        found.novelty.scores.astype(np.float64),
        f"novel: computed from the features ({base.method}, {base.percentile:g}th percentile)",
    )


def _two_controls(controls: np.ndarray, source: str, no_signal: np.ndarray) -> None:
    """Refuse a novelty bar drawn through a single control cell's score."""
    if controls.sum() >= 2 and (controls & ~no_signal).sum() < 2:
        raise ValueError(
            f"{source}: {int((controls & ~no_signal).sum())} of the {int(controls.sum())} "
            "negative-control cells have crops with signal (column no_signal); novel cells "
            "are those above a percentile of their scores, which needs at least two"
        )
    if controls.sum() < 2:
        raise ValueError(
            f"{source}: only one cell is a negative control; novel cells are those above a "
            "percentile of the control cells' scores, which needs at least two"
        )


def hit_list(
    obs: pd.DataFrame,
    novel: np.ndarray,
    by: str = "position",
    scores: np.ndarray | None = None,
    control_token: str = "neg",
    source: str = "the cell table",
) -> pd.DataFrame:
    """One row per position (or condition), ranked by the share of novel cells.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cell table (``position``, ``well``, ``condition``, ``control`` or ``group``;
        ``plate`` when there are several plates).
    novel : ndarray (N,) bool
    by : {"position", "condition"}
    scores : ndarray (N,), optional
        Novelty scores, for a ``median_novelty`` column.
    control_token : str
        See :func:`novel_cells`.
    source : str
        Named in messages (the file).

    Returns
    -------
    pandas.DataFrame
        ``rank`` (1 = strongest hit), ``position``, ``well``, ``condition`` (``plate`` when
        the table has it), ``n_cells`` (cells with signal: those marked ``no_signal`` are
        left out; a time-lapse's rows over all its frames), ``n_novel``,
        ``novel_fraction``, ``enrichment`` (over the control cells), ``robust_z`` (against
        the control wells' novel fractions), ``p_value`` and ``q_value`` (counting the
        cells of one frame where ``obs`` has a ``frame`` column), ``median_novelty`` (with
        scores) and ``is_control``. By condition,
        ``position`` and ``well`` list the condition's positions and wells.
    """
    import pandas as pd

    if by not in HIT_BY:
        raise ValueError(f"unknown hit unit {by!r}; choose {' or '.join(HIT_BY)}")
    counted = ~without_signal(obs, source)
    if not counted.all():  # their features describe no cell: no share of a well's cells
        obs, novel = obs[counted], np.asarray(novel)[counted]
        scores = None if scores is None else np.asarray(scores)[counted]
    controls = _controls(obs, control_token, source)
    columns = [c for c in ("plate", "position", "well", "condition") if c in obs]
    for column in columns:
        _complete(obs, column, source)
    # "DMSO " and "DMSO" are one condition (mapping files are read so; a table typed by
    # hand often holds trailing spaces). Each column's distinct values are made text and
    # stripped, not every cell's: a million cells' texts took 0.6 GB and seconds.
    coded = {c: _stripped_codes(obs[c]) for c in columns}
    plate = ["plate"] if "plate" in coded else []
    key = [*plate, "position"] if by == "position" else ["condition"]
    groups, labels = _joined([coded[c] for c in key])
    positions = _joined([coded[c] for c in [*plate, "position"]])
    if by == "condition":
        _warn_mixed(groups, labels, controls, positions)
    wells = _joined([coded[c] for c in [*plate, "well"]])[0]
    # a time-lapse lists each cell once per frame: p and z count the cells of a frame
    frames = pd.factorize(obs["frame"])[0] if "frame" in obs else None
    weights = None if frames is None else frame_weights(positions[0], frames)
    table = hit_table(novel, groups, controls, labels, wells, scores, weights)
    names = [c for c in ("plate", "position", "well", "condition") if c in coded]
    described = pd.DataFrame(
        {c: _listed(groups, *coded[c], len(labels)) for c in names}, index=labels
    )
    out = described.loc[table["group"]].reset_index(drop=True)
    table = pd.concat([table.drop(columns="group"), out], axis=1)
    first = ["rank", *names]
    return table[first + [c for c in table.columns if c not in first]]


def _warn_mixed(
    groups: np.ndarray,
    labels: list[str],
    controls: np.ndarray,
    positions: tuple[np.ndarray, list[str]],
) -> None:
    """Warn about conditions that are negative controls in some positions only: by
    condition their cells make one row, which is no control row ('0 of 0 controls')."""
    from napari_cellae.core.listing import first_few

    n = np.bincount(groups, minlength=len(labels))
    held = np.bincount(groups, weights=controls, minlength=len(labels))
    mixed = np.flatnonzero((held > 0) & (held < n))
    if not len(mixed):
        return
    codes, names = positions
    treated = []
    for g in mixed:
        where = sorted({shown_name(names[c]) for c in codes[(groups == g) & ~controls]})
        treated.append(f"{shown_name(labels[g])} (not in {first_few(where)})")
    warnings.warn(
        f"condition(s) {first_few(treated)} mark negative controls in some positions but not "
        "in others: by condition each is one row of all its cells, counted as treated; check "
        "the mapping's Group column, or rank by position",
        stacklevel=3,
    )


def _stripped_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each cell's code and the texts the codes stand for (``str(value).strip()``; values
    alike once stripped share a code), in order of first appearance."""
    import pandas as pd

    codes, uniques = pd.factorize(values)
    if values.dtype == object and len({type(v) for v in uniques}) > 1:
        # factorize takes 1, 1.0 and True for one value; as text they are three
        codes, uniques = pd.factorize(values.astype(str))
    texts = np.asarray([str(v).strip() for v in uniques], dtype=object)
    merged, names = pd.factorize(texts)
    return merged[codes], [str(v) for v in names]


def _joined(parts: list[tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, list[str]]:
    """Each cell's id of its texts of several columns joined by "/" (``plate/A01_1``), and
    the joined texts; alike texts share an id, numbered in order of first appearance."""
    import pandas as pd

    combined = np.zeros(len(parts[0][0]), np.int64)
    for codes, texts in parts:
        combined = combined * len(texts) + codes
    ids = pd.factorize(combined)[0]
    first = np.unique(ids, return_index=True)[1]  # a cell of each id, ids in order
    joined = ["/".join(texts[codes[i]] for codes, texts in parts) for i in first.tolist()]
    merged, labels = pd.factorize(np.asarray(joined, dtype=object))
    return merged[ids], [str(v) for v in labels]


def _listed(groups: np.ndarray, codes: np.ndarray, texts: list[str], n_groups: int) -> list[str]:
    """Per group, the distinct texts of its cells joined by "," in order of appearance."""
    pairs = groups.astype(np.int64) * max(len(texts), 1) + codes
    first = np.sort(np.unique(pairs, return_index=True)[1])
    listed: list[list[str]] = [[] for _ in range(n_groups)]
    for group, code in zip(groups[first].tolist(), codes[first].tolist(), strict=True):
        listed[group].append(texts[code])
    return [",".join(values) for values in listed]
