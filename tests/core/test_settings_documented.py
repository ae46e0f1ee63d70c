"""Every environment variable settings read is in the README's configuration table (and nothing else is), and
every third-party package the code imports is declared in requirements.in (or requirements-dev.in)."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}
# In the table for operators, but read by a library rather than by settings.
READ_BY_LIBRARIES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
APP_PACKAGES = ("config", "core", "classification", "datasets", "sitemaps", "labeling")


def env_names_read(source: str) -> set[str]:
    """Names passed to the config/env.py helpers in a settings module."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ENV_HELPERS:
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant), f"line {node.lineno}: name the variable with a literal"
            names.add(first.value)
    return names


def env_names_documented(readme: str) -> set[str]:
    """Backticked names in the first column of the table under "## Configuration"."""
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_every_variable_settings_read_is_in_the_readme_table_and_only_those():
    read = env_names_read((ROOT / "config" / "settings.py").read_text())
    documented = env_names_documented((ROOT / "README.md").read_text())
    assert sorted(read - documented) == [], "add these to the README's configuration table"
    assert sorted(documented - read - READ_BY_LIBRARIES) == [], "the README documents variables nothing reads"


def test_settings_read_the_environment_only_through_config_env():
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    direct = [
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
    ]
    assert direct == []


def test_the_checks_see_a_variable_missing_from_the_table():
    settings = 'A = env_int("SPOTCHECK_A", 1)\nB = env_str("SPOTCHECK_B")\n'
    readme = "# x\n\n## Configuration\n\n| variable |\n|---|\n| `SPOTCHECK_A` | 1 |\n\n## Next\n| `SPOTCHECK_B` |\n"
    assert env_names_read(settings) - env_names_documented(readme) == {"SPOTCHECK_B"}


def _declared(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[=<>~! ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _third_party_imports(paths) -> dict[str, str]:
    """Top-level module → a file importing it, for modules that are neither ours nor the standard library."""
    # Benchmarks import their sibling modules (bench/heldout.py) by name: sys.path holds bench/.
    ours = {*APP_PACKAGES, "tests", "bench", *(p.stem for p in (ROOT / "bench").glob("*.py"))}
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in ours and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _undeclared(paths, declared: set[str]) -> list[str]:
    distributions = packages_distributions()
    missing = []
    for module, where in sorted(_third_party_imports(paths).items()):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} ({', '.join(sorted(names))}) imported by {where}")
    return missing


def test_every_package_the_app_imports_is_declared_in_requirements_in():
    app_files = [p for package in APP_PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert _undeclared([*app_files, ROOT / "manage.py"], _declared(ROOT / "requirements.in")) == []


def test_every_package_tests_and_benchmarks_import_is_declared():
    declared = _declared(ROOT / "requirements.in") | _declared(ROOT / "requirements-dev.in")
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    assert _undeclared(files, declared) == []


def test_the_dev_lock_pins_every_runtime_package_at_the_same_version():
    """`make test` installs only requirements-dev.txt: a runtime pin missing there is missing from CI's venv."""

    def pins(path):
        return {line.strip() for line in path.read_text().splitlines() if line.strip() and line[0] not in "#-"}

    assert pins(ROOT / "requirements.txt") - pins(ROOT / "requirements-dev.txt") == set()
