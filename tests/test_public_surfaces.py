"""Each package of auditrelay offers a public surface in its `__init__.py`; other packages use
only that, never a package's submodules (as httpx's `tests/test_exported_members.py` checks
its own). The layers themselves are checked by the import-linter contract in pyproject.toml.
"""

from __future__ import annotations

import importlib
import pkgutil

import grimp

import auditrelay

PACKAGES = sorted(
    f"auditrelay.{info.name}" for info in pkgutil.iter_modules(auditrelay.__path__) if info.ispkg
)


def _package_of(module: str) -> str:
    """`auditrelay.store.event_log` -> `auditrelay.store`; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def test_no_package_imports_another_packages_submodules() -> None:
    graph = grimp.build_graph("auditrelay")
    reaching_in = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = _package_of(imported)
            if target == _package_of(importer) or target not in PACKAGES or imported == target:
                continue
            for detail in graph.get_import_details(importer=importer, imported=imported):
                reaching_in.append(f"{importer}:{detail['line_number']} imports {imported}")
    assert not reaching_in, "use the package's __init__ instead:\n" + "\n".join(reaching_in)


def test_every_package_names_what_it_offers() -> None:
    assert PACKAGES, "no packages found"
    for name in PACKAGES:
        package = importlib.import_module(name)
        offered = getattr(package, "__all__", None)
        assert offered, f"{name}/__init__.py declares no __all__"
        missing = [member for member in offered if not hasattr(package, member)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_the_check_sees_a_reach_into_a_submodule() -> None:
    """The first test would pass vacuously if the graph had no cross-package imports."""
    graph = grimp.build_graph("auditrelay")
    crossing = [
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if _package_of(imported) in PACKAGES and _package_of(imported) != _package_of(importer)
    ]
    assert len(crossing) > 20
