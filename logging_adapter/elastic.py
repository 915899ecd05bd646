"""Elasticsearch (and OpenSearch) clients from configuration and the environment.

Settings come from ``PREDWATCH_ES_*`` environment variables; explicit arguments
(command-line flags) override them. Secrets are never logged or printed:
:meth:`EsSettings.describe` shows the URL and which credential kind is in use.

``distribution="opensearch"`` sends plain ``application/json`` instead of the
8.x client's compatibility media types, which OpenSearch (and the in-memory test
engine) answer with 406. It does so with a node class, not by patching the client.
"""
from __future__ import annotations

import logging
import os
import re
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any

from elastic_transport import HttpHeaders, Urllib3HttpNode
from elasticsearch import Elasticsearch

log = logging.getLogger("predwatch.setup")
ENV_PREFIX = "PREDWATCH_ES_"
DISTRIBUTIONS = ("elasticsearch", "opensearch")
_COMPAT = "application/vnd.elasticsearch+"


# scheme (optional: "user:pw@host:9200" too), user info up to the authority's last "@", and the rest
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?:(?P<userinfo>[^/?#]*)@)?(?P<rest>.*)", re.S)


def url_credentials(url: str) -> tuple[str | None, str | None, str]:
    """``(user, password, the URL without them)`` of a URL that may carry ``user:password@``."""
    found = _URL.fullmatch(str(url))
    if found is None or found["userinfo"] is None:
        return None, None, str(url)
    user, colon, password = found["userinfo"].partition(":")
    return (urllib.parse.unquote(user) or None, urllib.parse.unquote(password) if colon else None,
            (found["scheme"] or "") + found["rest"])


def safe_url(url: str) -> str:
    """A URL as it may be printed or logged: any ``user:password@`` removed (never shown anywhere)."""
    return url_credentials(url)[2]


def url_host(url: str) -> str:
    """Only the host (and port) of a URL: for webhooks, whose path is the secret (a Slack webhook's is)."""
    rest = _URL.fullmatch(str(url))["rest"]  # type: ignore[index]  # the pattern matches any text
    return re.split(r"[/?#]", rest, maxsplit=1)[0] or "<no host>"


class PlainJsonNode(Urllib3HttpNode):
    """Rewrites ``application/vnd.elasticsearch+json; compatible-with=8`` to ``application/json``
    (and the ``x-ndjson`` variant) on every request, for OpenSearch-compatible servers."""

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None, **kwargs: Any):  # type: ignore[override]
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and value.startswith(_COMPAT):
                    headers[name] = "application/" + value[len(_COMPAT):].split(";", 1)[0]
        response = super().perform_request(method, target, body=body, headers=headers, **kwargs)
        # OpenSearch does not announce itself as Elasticsearch; the 8.x client insists on it.
        response.meta.headers.setdefault("x-elastic-product", "Elasticsearch")
        return response


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

# predwatch.toml's [elasticsearch] keys that are not strings, and what they must be
_TOML_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "verify_certs": ((bool,), "true or false (a TOML boolean, not a string)"),
    "request_timeout": ((int, float), "a number of seconds"),
}


@dataclass(frozen=True)
class EsSettings:
    """Where and how to connect. ``from_env`` reads ``PREDWATCH_ES_*``; arguments win.

    A URL given with ``user:password@`` (flag or environment) is split: the credentials are used as
    ``username``/``password`` (unless those are given too) and the URL kept, shown and logged without them."""

    url: str = "http://localhost:9200"
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    distribution: str = "elasticsearch"
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        user, password, url = url_credentials(self.url)
        if url != self.url:
            object.__setattr__(self, "url", url)
            if self.username is None and self.api_key is None:
                object.__setattr__(self, "username", user)
                object.__setattr__(self, "password", password)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "EsSettings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in ("url", "api_key", "username", "password", "ca_certs", "distribution"):
            if env.get(ENV_PREFIX + name.upper()):
                values[name] = env[ENV_PREFIX + name.upper()]
        if env.get(ENV_PREFIX + "VERIFY_CERTS"):
            word = env[ENV_PREFIX + "VERIFY_CERTS"].strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(f"{ENV_PREFIX}VERIFY_CERTS must be one of {', '.join(_TRUE + _FALSE)}, not {word!r}")
            values["verify_certs"] = word in _TRUE
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if settings.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, not {settings.distribution!r}")
        return settings

    @classmethod
    def from_toml(cls, table: dict[str, Any], **overrides: Any) -> "EsSettings":
        """From predwatch.toml's ``[elasticsearch]`` table (then the environment, then ``overrides``, the flags).

        A file is read by others and kept in version control: it holds no secret, so a URL with
        ``user:password@`` is refused like a ``password`` key; a value of the wrong type (``verify_certs =
        "false"``, which would keep verification on) is refused with its key named."""
        for key, value in table.items():
            kinds, wanted = _TOML_TYPES.get(key, ((str,), "a string"))
            if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
                raise ValueError(f"[elasticsearch] {key} must be {wanted}, not {value!r}")
        if "url" in table and url_credentials(table["url"])[2] != table["url"]:
            raise ValueError(f"[elasticsearch] url {safe_url(table['url'])!r} carries credentials (user:password@): "
                             "remove them from the file and set PREDWATCH_ES_USERNAME and PREDWATCH_ES_PASSWORD "
                             "(or PREDWATCH_ES_API_KEY)")
        return cls.from_env(**{**table, **{k: v for k, v in overrides.items() if v is not None}})

    def with_(self, **changes: Any) -> "EsSettings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> str:
        """Human-readable, secret-free description."""
        auth = "API key" if self.api_key else f"user {self.username}" if self.username else "no auth"
        return f"{safe_url(self.url)} ({self.distribution}, {auth})"


_warned_plain_http: set[str] = set()


def make_client(settings: EsSettings | None = None, **options: Any) -> Elasticsearch:
    """An ``Elasticsearch`` client for the settings (``options`` go to the client as they are)."""
    settings = settings or EsSettings.from_env()
    kwargs: dict[str, Any] = {"request_timeout": settings.request_timeout}
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    elif settings.username:
        kwargs["basic_auth"] = (settings.username, settings.password or "")
    if settings.url.startswith("https"):
        kwargs["verify_certs"] = settings.verify_certs
        if settings.ca_certs:
            kwargs["ca_certs"] = settings.ca_certs
    elif (settings.api_key or settings.password) and settings.url not in _warned_plain_http:
        _warned_plain_http.add(settings.url)  # once per URL and process
        log.warning("%s is sent to %s over plain http://: anyone on the network path can read it; use https://",
                    "an API key" if settings.api_key else "a password", safe_url(settings.url))
    if settings.distribution == "opensearch":
        kwargs["node_class"] = PlainJsonNode
    kwargs.update(options)
    return Elasticsearch(settings.url, **kwargs)


@dataclass(frozen=True)
class Capabilities:
    """What the cluster offers, detected rather than assumed."""

    distribution: str
    version: tuple[int, ...]
    ilm: bool

    @property
    def ignore_dynamic_beyond_limit(self) -> bool:
        return self.distribution == "elasticsearch" and self.version >= (8, 14)


def detect(client: Elasticsearch) -> Capabilities:
    info = client.info()
    version = info.get("version", {})
    distribution = version.get("distribution") or "elasticsearch"
    numbers = tuple(int(p) for p in str(version.get("number", "0")).split("-")[0].split(".") if p.isdigit())
    ilm = False
    if distribution == "elasticsearch":
        try:
            client.ilm.get_status()
            ilm = True
        except Exception:  # noqa: BLE001 - no ILM (or no privilege for it): use name-based retention
            ilm = False
    return Capabilities(distribution, numbers, ilm)
