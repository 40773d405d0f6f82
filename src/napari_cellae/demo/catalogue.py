"""The benchmark screen's catalogue: which phenotypes each of its 32 wells holds.

8 negative-control wells hold the natural share of mitotic stages and rarer phenotypes; 24
perturbation wells are each enriched for one to three of the 15 phenotypes of
:mod:`napari_cellae.demo.phenotypes`, some strongly, some weakly.
"""

from __future__ import annotations

from napari_cellae.demo.layout import Condition, WellSpec
from napari_cellae.demo.phenotypes import PHENOTYPES

__all__ = ["BENCHMARK_LAYOUT", "CONTROL_SHARE", "HITS"]

# Natural share of each phenotype in an unperturbed population (controls).
CONTROL_SHARE = {
    "interphase": 0.86, "prophase": 0.02, "prometaphase": 0.015, "metaphase": 0.02,
    "metaphase alignment": 0.004, "anaphase": 0.01, "apoptosis": 0.015, "binuclear": 0.012,
    "polylobed": 0.006, "grape": 0.003, "large": 0.012, "elongated": 0.012,
    "small irregular": 0.01, "hole": 0.004, "out of focus": 0.012,
}  # fmt: skip

# Perturbations: gene, reagent and the share of the population each enriched phenotype takes.
# Names are illustrative; 15 strong hits move 45-75 % of the cells, 3 moderate ones 30-35 %,
# 6 weak ones 20-25 %.
HITS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("KIF11", "s7902", {"prometaphase": 0.6, "metaphase alignment": 0.15}),
    ("PLK1", "s449", {"prometaphase": 0.35, "apoptosis": 0.3}),
    ("CENPE", "s2920", {"metaphase alignment": 0.45, "metaphase": 0.2}),
    ("KIF18A", "s3702", {"metaphase alignment": 0.2}),
    ("AURKB", "s17611", {"binuclear": 0.3, "polylobed": 0.2, "large": 0.15}),
    ("ANLN", "s1133", {"binuclear": 0.25}),
    ("COPB1", "s3371", {"apoptosis": 0.6}),
    ("BCL2L1", "s1920", {"apoptosis": 0.2}),
    ("LMNA", "s8221", {"polylobed": 0.35, "grape": 0.3}),
    ("KPNB1", "s7917", {"grape": 0.2, "small irregular": 0.15}),
    ("CDC20", "s2750", {"metaphase": 0.4, "anaphase": 0.15}),
    ("ESPL1", "s4868", {"anaphase": 0.35}),
    ("CCNB1", "s2513", {"prophase": 0.4, "prometaphase": 0.1}),
    ("CDK1", "s2839", {"prophase": 0.2}),
    ("ACTR3", "s1047", {"elongated": 0.5}),
    ("RACGAP1", "s21101", {"elongated": 0.2, "binuclear": 0.1}),
    ("GMNN", "s6107", {"large": 0.55}),
    ("CCNE1", "s2525", {"large": 0.25}),
    ("RRM2", "s12362", {"small irregular": 0.5, "apoptosis": 0.1}),
    ("NUP153", "s19374", {"hole": 0.45}),
    ("NUP98", "s9788", {"hole": 0.2}),
    ("ITGB1", "s7575", {"out of focus": 0.45}),
    ("TPX2", "s21131", {"metaphase": 0.25, "metaphase alignment": 0.2, "apoptosis": 0.15}),
    ("SMC4", "s12875", {"prophase": 0.2, "anaphase": 0.2, "grape": 0.15}),
)


def _fractions(enriched: dict[str, float]) -> tuple[float, ...]:
    """Class fractions: the enriched phenotypes on top of a shrunken control population."""
    rest = 1.0 - sum(enriched.values())
    total = sum(CONTROL_SHARE.values())
    return tuple(
        rest * CONTROL_SHARE[name] / total + enriched.get(name, 0.0) for name in PHENOTYPES
    )


def _layout() -> tuple[WellSpec, ...]:
    """4 x 8 wells; controls spread over the plate, hits in the order of :data:`HITS`."""
    wells = [f"{row}{col:02d}" for row in "ABCD" for col in range(1, 9)]
    control_wells = {"A01", "A05", "B03", "B08", "C02", "C06", "D04", "D07"}
    neg = Condition("scrambled", "s_neg_01", "neg", _fractions({}))
    hits = iter(HITS)
    specs = []
    for well in wells:
        if well in control_wells:
            specs.append(WellSpec(well, "1", neg))
        else:
            gene, sirna, enriched = next(hits)
            specs.append(
                WellSpec(well, "1", Condition(gene, sirna, "target", _fractions(enriched)))
            )
    return tuple(specs)


BENCHMARK_LAYOUT: tuple[WellSpec, ...] = _layout()
