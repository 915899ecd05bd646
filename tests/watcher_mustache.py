"""Watcher's mustache, as far as our watches use it, for rendering them the way Watcher would.

Watcher renders action bodies and search bodies as text templates. A template that
starts with ``__json__::`` is rendered as JSON: every inserted value is JSON-escaped
(the surrounding quotes are the template's); any other template is text/plain and
values go in as they are, whatever ``options.content_type`` says. ``{{#toJson}}path{{/toJson}}``
writes the value at ``path`` as JSON. Sections iterate over lists and enter objects.
(Read from Elasticsearch's TextTemplateEngine and CustomMustacheFactory; Kibana's APM
watches build Slack bodies as ``__json__::`` + a JSON string literal in the same way.)
"""
from __future__ import annotations

import json
import re
from typing import Any

TAG = re.compile(r"\{\{([#/^]?)\s*([^}]+?)\s*\}\}")
JSON_PREFIX = "__json__::"


def render(template: str, ctx: dict[str, Any]) -> str:
    json_mode = template.startswith(JSON_PREFIX)
    if json_mode:
        template = template[len(JSON_PREFIX):]
    return _render(template, [ctx], json_mode)


def _lookup(stack: list[Any], path: str) -> Any:
    head, *rest = path.split(".")
    for frame in reversed(stack):
        if isinstance(frame, dict) and head in frame:
            value = frame[head]
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
            return value
    return None


def _render(template: str, stack: list[Any], json_mode: bool) -> str:
    out, pos = [], 0
    while True:
        m = TAG.search(template, pos)
        if m is None:
            out.append(template[pos:])
            return "".join(out)
        out.append(template[pos:m.start()])
        kind, name = m.group(1), m.group(2)
        if kind in ("#", "^"):
            close = template.index("{{/" + name + "}}", m.end())
            inner = template[m.end():close]
            pos = close + len(name) + 5
            if name == "toJson":
                out.append(json.dumps(_lookup(stack, inner.strip()), separators=(",", ":")))
                continue
            value = _lookup(stack, name)
            if kind == "^":
                if not value:
                    out.append(_render(inner, stack, json_mode))
            elif isinstance(value, list):
                out.extend(_render(inner, stack + [item], json_mode) for item in value)
            elif value:
                out.append(_render(inner, stack + [value], json_mode))
            continue
        value = _lookup(stack, name)
        text = "" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)
        out.append(json.dumps(text)[1:-1] if json_mode else text)
        pos = m.end()
