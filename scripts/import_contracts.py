"""Two import-linter contract types the built-in ones cannot express without listing every
package of bot/ by hand (a list that would go stale as packages are added). Used by the
[tool.importlinter] contracts in pyproject.toml; `make lint` runs them.

- `self_contained`: modules in `package` import nothing of the project outside `package` (third
  party libraries are fine). bot.core uses it.
- `private`: nothing outside `package` imports it, except the importers in `allowed`. bot.sandbox
  uses it (tests and benches are not in the graph, so they may).
Both look at direct imports, at any depth (function-level imports included): with every direct
import checked there is no indirect way around them.
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _project_imports(graph, root_packages):
    for importer in sorted(graph.modules):
        if not any(_inside(importer, root) for root in root_packages):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if any(_inside(imported, root) for root in root_packages):
                yield importer, imported


def _lines(graph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ", ".join(f"l.{d['line_number']}" for d in details) or "?"


class SelfContainedContract(Contract):
    type_name = "self_contained"
    package = fields.StringField()

    def check(self, graph, verbose: bool) -> ContractCheck:
        roots = self.session_options["root_packages"]
        bad = [
            (a, b, _lines(graph, a, b))
            for a, b in _project_imports(graph, roots)
            if _inside(a, self.package) and not _inside(b, self.package)
        ]
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["bad"]:
            output.print_error(f"{importer} imports {imported} ({lines})")


class PrivateContract(Contract):
    type_name = "private"
    package = fields.StringField()
    allowed = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        roots = self.session_options["root_packages"]
        allowed = [self.package, *(self.allowed or [])]
        bad = [
            (a, b, _lines(graph, a, b))
            for a, b in _project_imports(graph, roots)
            if _inside(b, self.package) and not any(_inside(a, ok) for ok in allowed)
        ]
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["bad"]:
            output.print_error(f"{importer} imports {imported} ({lines})")
