"""A griffe extension for the API reference: flowcoord's docstrings use Sphinx roles
(:class:`Engine`, :meth:`~flowcoord.Engine.fork`, ...). Markdown does not know them, so each
role becomes a cross-reference to the object it names (looked up from the docstring's own
scope outwards, then in the public modules), rendered as code. A name that is not in the
reference (a private helper) stays plain code, without a warning; ``::`` ending a paragraph
(reST's literal-block marker) becomes ``:``.

It also takes each public module's exports from its ``__all__`` at run time: the top level
computes its ``__all__`` (``sorted([...])``), which griffe cannot read statically."""

from __future__ import annotations

import importlib
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`"
    r"(?:(?P<title>[^`<]+?)\s*<(?P<target>[\w.]+)>|(?P<short>~?)(?P<name>[\w.]+)(?P<call>\(\))?)`"
)
_LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
_PUBLIC = (
    "flowcoord",
    "flowcoord.journal",
    "flowcoord.coordination",
    "flowcoord.errors",
    "flowcoord.testing",
    "flowcoord.aiohttp",
)


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "flowcoord":
            return
        for path in _PUBLIC:
            module = pkg if path == "flowcoord" else pkg[path.removeprefix("flowcoord.")]
            try:
                module.exports = list(importlib.import_module(path).__all__)
            except ImportError:  # e.g. aiohttp missing: keep what griffe read statically
                continue
        for obj in _walk(pkg, set()):
            if obj.docstring is not None:
                obj.docstring.value = _convert(obj, obj.docstring.value)


def _walk(obj: griffe.Object, seen: set[str]) -> list[griffe.Object]:
    if obj.path in seen:
        return []
    seen.add(obj.path)
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member, seen)  # type: ignore[arg-type]
    return found


def _lookup(scope: griffe.Object | griffe.Alias, name: str) -> str | None:
    try:
        found = scope[name]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    try:
        return str(found.canonical_path)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _resolve(obj: griffe.Object, name: str) -> str | None:
    pkg = obj.package
    if name.startswith("flowcoord."):
        scopes: list[Any] = [pkg]
        name = name.removeprefix("flowcoord.")
    else:
        scopes = []
        scope: Any = obj
        while scope is not None:
            scopes.append(scope)
            scope = scope.parent
        for path in _PUBLIC:
            scopes.append(pkg if path == "flowcoord" else pkg[path.removeprefix("flowcoord.")])
    for scope in scopes:
        found = _lookup(scope, name)
        if found is not None:
            return found
    return None


def _convert(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["target"]:  # :meth:`title <target>`
            name, shown = match["target"], match["title"]
        else:
            name, call = match["name"], match["call"] or ""
            shown = (name.rsplit(".", 1)[-1] if match["short"] else name) + call
        target = _resolve(obj, name)
        if target is None:
            return f"`{shown}`"
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'

    return _LITERAL.sub(":", _ROLE.sub(replace, text))
