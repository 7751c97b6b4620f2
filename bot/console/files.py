"""/admin/files: the knowledge base, the add-on catalogue and the SLA policy, edited in the
browser and validated before saving.

A submitted file is checked by the loader the running processes use (bot.datafiles): it is
written into a temporary copy of its folder and that copy is loaded; only a copy that loads is
saved, atomically (temporary file + rename), and audited with the digests before and after. The
processes hold these files as `bot.live.Live` values, so a saved file takes effect within
seconds, without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from aiohttp import web

from bot.console.advisor import _flash, _render_with_flash
from bot.console.web import deps_of, member_of, refuse, require

MAX_BYTES = 256 * 1024


def _kinds(settings) -> dict[str, tuple[str, Path, Callable[[Path, str], object]]]:
    """kind -> (title, the folder its files live in, load(folder, file name))."""
    from bot.datafiles import _read_kb
    from bot.orders.catalogue import CATALOGUE_DIR, Catalogue
    from bot.paging.policy import load_policy

    policy = Path(settings.sla_policy_file)
    return {
        "knowledge": (
            "知识库",
            Path(settings.knowledge_dir),
            lambda folder, name: _read_kb(folder),
        ),
        "catalogue": (
            "附加服务目录",
            Path(CATALOGUE_DIR),
            lambda folder, name: Catalogue.load(folder),
        ),
        "sla": ("SLA 策略", policy.parent, lambda folder, name: load_policy(folder / name)),
    }


def _files(kind: str, folder: Path, settings) -> list[str]:
    if kind == "sla":
        return [Path(settings.sla_policy_file).name]
    return sorted(p.name for p in folder.glob("*.yml"))


def validate(load, folder: Path, name: str, text: str) -> None:
    """Raise the loader's own error when `text` as `folder/name` would not load."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.bak", "__pycache__"))
        (copy / name).write_text(text, encoding="utf-8")
        load(copy, name)


def save(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _resolve(request: web.Request):
    settings = deps_of(request).settings
    kinds = _kinds(settings)
    kind, name = request.match_info["kind"], request.match_info["name"]
    if kind not in kinds or name not in _files(kind, kinds[kind][1], settings):
        return None
    return kind, name, kinds[kind]


@require("admin")
async def files_page(request: web.Request) -> web.StreamResponse:
    settings = deps_of(request).settings
    groups = [
        (kind, title, _files(kind, folder, settings))
        for kind, (title, folder, _) in _kinds(settings).items()
    ]
    return _render_with_flash(request, "console/files.html", groups=groups, editing=None)


@require("admin")
async def file_page(request: web.Request) -> web.StreamResponse:
    found = _resolve(request)
    if found is None:
        return refuse(request, "没有这个文件。", status=404)
    kind, name, (title, folder, _) = found
    text = await asyncio.to_thread((folder / name).read_text, encoding="utf-8")
    return _render_with_flash(
        request,
        "console/files.html",
        groups=None,
        editing={"kind": kind, "name": name, "title": title, "text": text, "problem": None},
    )


@require("admin")
async def file_submit(request: web.Request) -> web.StreamResponse:
    found = _resolve(request)
    if found is None:
        return refuse(request, "没有这个文件。", status=404)
    kind, name, (title, folder, load) = found
    form = await request.post()
    text = str(form.get("text") or "").replace("\r\n", "\n")
    action = str(form.get("action") or "check")
    editing = {"kind": kind, "name": name, "title": title, "text": text, "problem": None}
    if len(text.encode("utf-8")) > MAX_BYTES:
        editing["problem"] = f"文件太大（最多 {MAX_BYTES // 1024} KB）"
    else:
        try:
            await asyncio.to_thread(validate, load, folder, name, text)
        except Exception as exc:  # each loader raises its own error, naming file and key
            editing["problem"] = str(exc)
    if editing["problem"] or action != "save":
        return _render_with_flash(
            request,
            "console/files.html",
            groups=None,
            editing=editing,
            checked=editing["problem"] is None,
        )
    path = folder / name
    before = await asyncio.to_thread(path.read_text, encoding="utf-8")
    await asyncio.to_thread(save, path, text)
    await asyncio.to_thread(
        deps_of(request).crm.record_audit,
        f"console:{member_of(request).userid}",
        "datafile.save",
        kind,
        name,
        {"before": _digest(before), "after": _digest(text)},
    )
    return _flash(
        web.HTTPSeeOther(f"/admin/files/{kind}/{name}"),
        f"已校验并保存 {name}，运行中的服务几秒内生效。",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/files", files_page)
    app.router.add_get(r"/admin/files/{kind}/{name}", file_page)
    app.router.add_post(r"/admin/files/{kind}/{name}", file_submit)
