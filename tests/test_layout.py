"""The source root `operator/` must never shadow the standard library module."""

import operator
import sysconfig
from pathlib import Path


def test_operator_module_is_the_standard_library() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(operator.__file__).resolve().parent == stdlib


def test_source_root_has_no_init() -> None:
    assert not (Path(__file__).resolve().parents[1] / "operator" / "__init__.py").exists()
