"""Window profiles in Elasticsearch: what the daemon measured, kept so that the recent past can be a reference
without querying raw records again."""
from __future__ import annotations

import orjson
from elasticsearch import Elasticsearch

from logging_adapter.bulk import Doc

from ..core.profile import WindowProfile
from ..sources.search import of_model, search
from .results import WINDOW_START, profiles_index, result_id


def profile_doc(profile: WindowProfile, *, prefix: str, model: str, version: str | None, start: str,
                end: str) -> Doc:
    doc = {"@timestamp": end, "predwatch": {"model": {"name": model, "version": version},
                                            "window": {"start": start, "end": end, "records": profile.records}},
           "profile": {k: v for k, v in profile.to_dict().items() if k != "sample"}}  # joint checks: training only
    return Doc(profiles_index(prefix), result_id(model, version, start, end, "profile"), orjson.dumps(doc))


def load_profiles(client: Elasticsearch, prefix: str, model: str, version: str | None,
                  starts: list[str]) -> list[WindowProfile]:
    """The stored profiles of ``model`` (and ``version``) for windows starting at ``starts``."""
    query = of_model(model, version)
    query["bool"]["filter"].append({"terms": {WINDOW_START: starts}})
    resp = search(client, index=profiles_index(prefix), size=len(starts), query=query,
                         ignore_unavailable=True, allow_no_indices=True)
    return [WindowProfile.from_dict(h["_source"]["profile"]) for h in resp["hits"]["hits"]]
