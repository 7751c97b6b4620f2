"""bot.core.settings: every environment variable is read there, and development defaults for
secrets never reach production."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.core import settings as s

ROOT = Path(__file__).resolve().parents[2]


def _env_reads(path: Path) -> list[str]:
    """Places that read the environment in a file: `os.getenv(...)` and any use of
    `os.environ` except writing it (`os.environ[k] = v`, `.setdefault`) or copying all of it for
    a child process (`{**os.environ, ...}`, `dict(os.environ, ...)`). An alias such as
    `env = os.environ` counts as a read."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        text = ast.unparse(node) if isinstance(node, (ast.Attribute, ast.Call)) else ""
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.getenv", "getenv"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
            continue
        if not (isinstance(node, ast.Attribute) and text == "os.environ"):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
            continue  # os.environ[k] = v
        if isinstance(parent, ast.Attribute) and parent.attr == "setdefault":
            continue
        if isinstance(parent, ast.Dict) and None in parent.keys:
            continue  # {**os.environ, ...}
        if (
            isinstance(parent, ast.Call)
            and ast.unparse(parent.func) == "dict"
            and parent.args
            and parent.args[0] is node
        ):
            continue  # dict(os.environ, ...)
        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(parent or node)}")
    return found


def test_no_environment_read_outside_settings():
    files = [p for d in ("bot", "actions", "connectors") for p in (ROOT / d).rglob("*.py")]
    reads = [r for p in files if p != ROOT / "bot" / "core" / "settings.py" for r in _env_reads(p)]
    assert reads == []


def test_the_guard_sees_a_read(tmp_path):
    sample = ROOT / "tests" / "core" / "_sample_env_read.py"
    sample.write_text(
        "import os\nX = os.environ.get('A')\nY = os.environ['B']\nenv = os.environ\n"
        "Z = os.getenv('D')\nos.environ['C'] = 'written, not read'\n"
        "os.environ.setdefault('E', '1')\nchild = {**os.environ, 'F': '1'}\n",
        encoding="utf-8",
    )
    try:
        assert sorted(int(r.split(":")[1]) for r in _env_reads(sample)) == [2, 3, 4, 5]
    finally:
        sample.unlink()


@pytest.mark.parametrize(
    "env,expected",
    [
        ("development", s.DEV_PAGING_LINK_SECRET),
        ("test", s.DEV_PAGING_LINK_SECRET),
        ("production", None),
        ("staging", None),
    ],
)
def test_case_link_secret_has_a_development_default_only_outside_production(
    monkeypatch, env, expected
):
    monkeypatch.delenv("PAGING_LINK_SECRET", raising=False)
    monkeypatch.setenv("CONCIERGE_ENV", env)
    assert s.load_settings().paging_link_secret == expected
    monkeypatch.setenv("PAGING_LINK_SECRET", "p" * 40)
    assert s.load_settings().paging_link_secret == "p" * 40


def test_production_preflight_names_the_development_link_secret(monkeypatch):
    """Even if the public default were in a production process's settings, preflight says so."""
    import dataclasses

    from bot.preflight import core_secrets

    monkeypatch.setenv("CONCIERGE_ENV", "development")
    settings = dataclasses.replace(s.load_settings(), concierge_env_raw="production")
    link = next(x for x in core_secrets() if x.env == "PAGING_LINK_SECRET")
    assert "published default" in str(link.problems(settings)[0])


def test_sandbox_and_intake_settings(monkeypatch):
    for name in ("SANDBOX_PORT", "SANDBOX_AIBOT_NAME", "WECOM_INTAKE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_CONNECTOR_URL", "http://127.0.0.1:5006/")
    monkeypatch.setenv("SANDBOX_CALLBACK_RETRIES", "7")
    monkeypatch.setenv("WECOM_INTAKE_NOTIFY_URL", "http://rasa:5005/webhooks/wecom/inbox")
    sandbox = s.load_sandbox_settings()
    assert (sandbox.port, sandbox.aibot_name) == (None, None)  # the sandbox's own defaults
    assert (sandbox.connector_url, sandbox.callback_retries) == ("http://127.0.0.1:5006", 7)
    intake = s.load_settings().intake
    assert (intake.port, intake.notify_url) == (5006, "http://rasa:5005/webhooks/wecom/inbox")


def test_sandbox_state_reads_the_environment_when_built(monkeypatch):
    from bot.sandbox.state import SandboxState

    monkeypatch.setenv("SANDBOX_AIBOT_NAME", "测试助手")
    monkeypatch.setenv("SANDBOX_TOKEN_TTL", "60")
    state = SandboxState()
    assert (state.aibot_name, state.token_ttl_s) == ("测试助手", 60)


def test_current_env_follows_the_environment_without_a_cache(monkeypatch):
    from bot.crm.runtime import is_production

    monkeypatch.setenv("CONCIERGE_ENV", "Production ")
    assert is_production()
    monkeypatch.setenv("CONCIERGE_ENV", "test")
    assert not is_production()


def test_env_example_and_readme_list_every_variable():
    source = (ROOT / "bot" / "core" / "settings.py").read_text(encoding="utf-8")
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "_env"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    names |= {f"WECOM_{n}" for n in s.load_settings().wecom}
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    def listed(name: str, text: str) -> bool:  # README groups WECOM_KF_* and the like
        parts = name.split("_")
        return name in text or any("_".join(parts[:i]) + "_*" in text for i in range(1, len(parts)))

    assert len(names) > 60
    assert sorted(n for n in names if not listed(n, example)) == []
    assert sorted(n for n in names if not listed(n, readme)) == []
