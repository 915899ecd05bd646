"""Import the saved objects through Kibana's saved objects API (multipart, ``kbn-xsrf``, overwrite)."""
from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from logging_adapter.elastic import safe_url, url_credentials

ENV = "PREDWATCH_KIBANA_"


@dataclass
class ImportResult:
    ok: bool
    created: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    status: int = 0
    destinations: dict[str, str] = field(default_factory=dict)  # our id -> the id Kibana gave the object

    def id_of(self, our_id: str) -> str:
        """The id the object has in Kibana now (Kibana may give an imported object a new one)."""
        return self.destinations.get(our_id, our_id)


@dataclass(frozen=True)
class KibanaAuth:
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "KibanaAuth":
        """``PREDWATCH_KIBANA_API_KEY`` or ``..._USERNAME``/``..._PASSWORD``; else the Elasticsearch ones."""
        env = os.environ if env is None else env
        for prefix in (ENV, "PREDWATCH_ES_"):
            if env.get(prefix + "API_KEY") or env.get(prefix + "USERNAME"):
                return cls(env.get(prefix + "API_KEY"), env.get(prefix + "USERNAME"), env.get(prefix + "PASSWORD"))
        return cls()

    def header(self) -> str | None:
        if self.api_key:
            return f"ApiKey {self.api_key}"
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return f"Basic {token}"
        return None


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``file`` field, and its content type."""
    boundary = f"predwatch-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/ndjson\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def import_saved_objects(kibana_url: str, ndjson: str, *, space: str | None = None, auth: KibanaAuth | None = None,
                         ca_certs: str | None = None, timeout: float = 30.0) -> ImportResult:
    """POST ``/api/saved_objects/_import?overwrite=true`` (in ``/s/<space>`` when given). A URL's
    ``user:password@`` is used as basic auth (when no other credential is set), never printed."""
    user, password, kibana_url = url_credentials(kibana_url)
    if user and not (auth and auth.header()):
        auth = KibanaAuth(username=user, password=password)
    base = kibana_url.rstrip("/") + (f"/s/{space}" if space else "")
    body, content_type = multipart("predwatch.ndjson", ndjson.encode())
    request = urllib.request.Request(f"{base}/api/saved_objects/_import?overwrite=true", data=body, method="POST",
                                     headers={"kbn-xsrf": "true", "Content-Type": content_type})
    header = (auth or KibanaAuth()).header()
    if header:
        request.add_header("Authorization", header)
    context = ssl.create_default_context(cafile=ca_certs) if ca_certs else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        return ImportResult(False, errors=[f"HTTP {exc.code}: {_message(text)}"], status=exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ImportResult(False, errors=[f"cannot reach Kibana at {safe_url(kibana_url)}: {reason}"])
    try:
        doc: dict[str, Any] = json.loads(text)
    except ValueError:
        return ImportResult(False, errors=[f"HTTP {status}: not a JSON answer: {text[:200]}"], status=status)
    created = [f"{o.get('type')} {o.get('id')}" for o in doc.get("successResults", [])]
    errors = [f"{e.get('type')} {e.get('id')}: {(e.get('error') or {}).get('type', 'error')}"
              f" {(e.get('error') or {}).get('message', '')}".rstrip() for e in doc.get("errors", [])]
    destinations = {o["id"]: o["destinationId"] for o in doc.get("successResults", [])
                    if o.get("id") and o.get("destinationId")}
    return ImportResult(bool(doc.get("success")) and not errors, created, errors, status, destinations)


def _message(text: str) -> str:
    try:
        doc = json.loads(text)
        return str(doc.get("message") or doc.get("error") or text)[:300]
    except ValueError:
        return text[:300]
