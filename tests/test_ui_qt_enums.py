"""Qt enums are named through their enum class (``Qt.AlignmentFlag.AlignLeft``).

PyQt6 has only those names: the short ones (``Qt.AlignLeft``) exist there through qtpy's
shim alone, and in PySide6 through its "forgiveness mode"; neither is promised to last.
"""

from __future__ import annotations

import ast
import enum
import importlib
from pathlib import Path

import napari_cellae

SRC = Path(napari_cellae.__file__).parent


def _short_enum_names() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        qt = {}  # the names this module imports from qtpy, as the binding has them
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qtpy."):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    qt[alias.asname or alias.name] = getattr(module, alias.name)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            owner = qt.get(node.value.id)
            if isinstance(getattr(owner, node.attr, None), enum.Enum):  # a member, unscoped
                where = path.relative_to(SRC)
                found.append(f"{where}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_qt_enum_members_are_named_through_their_enum():
    assert _short_enum_names() == []
