"""Novelty made again when the results tab's novelty boxes change, without encoding again.

:class:`Rescoring` follows the boxes (:class:`~napari_cellae._ui.novelty_controls.NoveltyControls`)
of a :class:`~napari_cellae._ui.results.Results`: a change makes the shown run's findings
again from the features in memory (:func:`~napari_cellae._ui.findings.refind`: only the
bar drawn again where only the percentile changed) in a side-task worker, then shows the
new hit table, colours and gallery; Save AnnData then writes them. One re-scoring runs at a
time: what the boxes ask meanwhile is done once it ends, the newest settings only, and a
result whose settings the boxes no longer show is dropped, so the table shown is always
that of the boxes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae._ui.background import side_task, warning_state_held, warning_state_holder
from napari_cellae._ui.cell_table import FoundColumns, found_columns
from napari_cellae._ui.findings import Findings, refind
from napari_cellae._ui.novelty_controls import METHODS, NO_CONTROLS, NO_RUN
from napari_cellae.pipeline import jobs

if TYPE_CHECKING:
    from napari_cellae._ui.colouring import Colouring
    from napari_cellae._ui.density import DensityGrid
    from napari_cellae._ui.results import Results
    from napari_cellae.pipeline.discovery import DiscoveryOptions
    from napari_cellae.pipeline.results import RunResult

__all__ = ["Rescoring", "rescored"]


def rescored(
    result: RunResult,
    findings: Findings,
    options: DiscoveryOptions,
    condition: Colouring,
    grids: dict[tuple[str, int], DensityGrid],
) -> tuple[Findings, FoundColumns]:
    """The findings of ``result`` with ``options`` and the embedding table's new columns
    (run in a worker; see :func:`~napari_cellae._ui.findings.refind` and
    :func:`~napari_cellae._ui.cell_table.found_columns`)."""
    found = refind(result, findings, options)
    return found, found_columns(found, condition, grids)


def _what(options: DiscoveryOptions) -> str:
    """The options in words, for the status line."""
    method = dict((m, label) for label, m in METHODS)[options.method]
    how = f"k {options.k}" if options.method == "knn" else f"nu {options.nu:g}"
    return f"above the controls' {options.percentile:g}th percentile, {method} ({how})"


class Rescoring:
    """Re-scores the run that ``results`` shows when its novelty boxes change.

    Parameters
    ----------
    results : Results
        Its ``panel.novelty`` are the boxes followed.
    """

    def __init__(self, results: Results) -> None:
        self.results = results
        self.controls = results.panel.novelty
        self.worker: Any = None
        self._refused: DiscoveryOptions | None = None  # settings that failed: not again
        self.controls.changed.connect(self.request)

    @property
    def busy(self) -> bool:
        """Whether a re-scoring runs."""
        return self.worker is not None

    def pending(self) -> bool:
        """Whether the findings shown are not yet those of the boxes' settings: a
        re-scoring runs or waits (Save AnnData would write the table before it)."""
        findings = self.results.findings
        if findings is None or findings.discovery.novelty is None:
            return False  # the boxes are off: nothing to re-score
        return self.busy or self.options() not in (findings.discovery.options, self._refused)

    def options(self) -> DiscoveryOptions:
        """The options the boxes show (the next run's too)."""
        return self.controls.options()

    def shown(self) -> None:
        """A run was shown (or its results dropped): the boxes show its options, enabled
        where it has novelty."""
        findings = self.results.findings
        self.controls.set_state("")
        self._refused = None
        if findings is None:
            self.controls.set_available(False, NO_RUN)
            return
        self.controls.show_options(findings.discovery.options)
        has_novelty = findings.discovery.novelty is not None
        self.controls.set_available(has_novelty, "" if has_novelty else NO_CONTROLS)

    def request(self) -> None:
        """The boxes changed: re-score now, or once the running re-scoring ends."""
        results = self.results
        if results.findings is None or results.result is None or self.busy:
            return  # a running one looks at the boxes again when it ends
        options = self.options()
        if options == results.findings.discovery.options or options == self._refused:
            self.controls.set_state("")
            return
        self._start(options)

    def _start(self, options: DiscoveryOptions) -> None:
        results = self.results
        result, findings, table = results.result, results.findings, results.table
        assert result is not None and findings is not None and table is not None
        cheap = self.controls.same_scores(findings.discovery.options)
        doing = "drawing the novelty bar again…" if cheap else "scoring the cells' novelty again…"
        # it waits while a job or the UMAP map runs (they share the warning state)
        waiting = f"waiting for {warning_state_holder()}…" if warning_state_held() else doing
        self.controls.set_state(waiting)
        worker = side_task(
            rescored,
            result,
            findings,
            options,
            table.colourings["condition"],
            dict(table.grids),
            errored=lambda err: self._failed(result, options, err),
            swaps_warnings=True,  # discover() catches the scoring's warnings
        )
        worker.returned.connect(lambda done: self._ready(result, options, *done))
        worker.started.connect(lambda: self.controls.set_state(doing))
        worker.finished.connect(self._finished)
        self.worker = worker
        results.start_task("re-scoring", worker)

    def _current(self, result: RunResult, options: DiscoveryOptions) -> bool:
        """Whether a re-scoring of ``result`` with ``options`` is still wanted."""
        results = self.results
        return result is results.result and options == self.options() and not results.closed

    def _ready(
        self, result: RunResult, options: DiscoveryOptions, findings: Findings, found: FoundColumns
    ) -> None:
        results = self.results
        if not self._current(result, options) or results.table is None:
            return  # the boxes changed meanwhile (redone when it ends), or another run
        results.findings = findings
        results.table.refind(found)
        results.refresh_findings()
        novelty = findings.discovery.novelty
        n = 0 if novelty is None else int(novelty.novel.sum())
        results.say(
            f"Re-scored without encoding again: {n} novel cells ({_what(options)}), "
            f"{findings.discovery.n_groups} phenotype group(s). Save AnnData writes them."
        )
        if result.trained is not None:  # the most novel cells of all, as after a run
            cells = np.arange(len(results.table))
            results.show_gallery(findings.most_novel(cells, jobs.GALLERY_PAIRS))

    def _failed(self, result: RunResult, options: DiscoveryOptions, err: BaseException) -> None:
        if result is not self.results.result or self.results.closed:
            return
        self._refused = options
        self.results.on_error(err)

    def _finished(self) -> None:
        self.worker = None
        findings = self.results.findings
        if findings is None or self.results.closed:
            return
        if self._refused is not None and self.options() == self._refused:
            # the table stays the last one made: the boxes show its settings again
            self.controls.show_options(findings.discovery.options)
            self.controls.set_state("")
            return
        self.request()  # the boxes' newest settings, if they are not those shown
