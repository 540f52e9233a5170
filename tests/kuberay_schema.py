"""Strict checks of a Kubernetes custom resource against its CRD's OpenAPI v3 schema, the way
`kubectl apply --validate=strict` checks it: wrong types, missing required fields, values
outside an enum or a format's range, and unknown fields (unless the schema preserves them)
are problems. Also a strict walk of a Ray Serve config over `ServeDeploySchema`'s pydantic
models: Serve itself ignores unknown keys at some levels (for forward compatibility), so a
misspelt key would pass `model_validate` silently."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel

# ObjectMeta fields a manifest may set (Kubernetes checks metadata itself, not the CRD).
OBJECT_META = {"name", "namespace", "labels", "annotations", "generateName", "finalizers"}
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The openAPIV3Schema of `version` in a CustomResourceDefinition."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return dict(entry["schema"]["openAPIV3Schema"])
    raise KeyError(f"the CRD has no version {version}")


def problems(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Everything strict validation refuses in `value`, each naming its path."""
    where = path or "."
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: must be an integer or a string"]
    for key in ("anyOf", "oneOf"):
        if key in schema and not any(not problems(value, s, path) for s in schema[key]):
            return [f"{where}: matches none of {key}"]
    kind = schema.get("type")
    if kind is not None and not _is(value, kind):
        return [f"{where}: must be {kind}, got {type(value).__name__} {value!r:.60}"]
    if kind == "object" or (isinstance(value, dict) and "properties" in schema):
        return _object_problems(value, schema, path)
    if kind == "array":
        item = schema.get("items", {})
        return [p for i, v in enumerate(value) for p in problems(v, item, f"{path}[{i}]")]
    return _scalar_problems(value, schema, where)


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, JSON_TYPES[kind])


def _object_problems(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    found = [
        f"{path or '.'}: missing required field {name!r}"
        for name in schema.get("required", [])
        if name not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    free = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
    for key, item in value.items():
        child = f"{path}.{key}"
        if key in properties:
            found += problems(item, properties[key], child)
        elif isinstance(extra, dict):
            found += problems(item, extra, child)
        elif path == ".metadata" or path.endswith("template.metadata"):
            found += [] if key in OBJECT_META else [f"{child}: unknown ObjectMeta field"]
        elif not free and (properties or extra is False):
            found.append(f"{child}: unknown field")
    return found


def _scalar_problems(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, int) and schema.get("format") in INT_RANGES:
        low, high = INT_RANGES[schema["format"]]
        if not low <= value <= high:
            found.append(f"{where}: {value} is out of {schema['format']} range")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        found.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    return found


def unknown_serve_keys(data: Any, model: type[BaseModel], path: str = "") -> list[str]:
    """Keys of `data` that name no field of `model` (by name or alias), at every level where
    the value is itself one of Serve's schema models."""
    if not isinstance(data, dict):
        return []
    fields = {}
    for name, info in model.model_fields.items():
        fields[name] = info.annotation
        if info.alias:
            fields[info.alias] = info.annotation
    found = []
    for key, value in data.items():
        child = f"{path}.{key}"
        if key not in fields:
            found.append(f"{child}: unknown field of {model.__name__}")
            continue
        for inner, index in _nested_models(fields[key], value):
            found += unknown_serve_keys(inner, index[0], f"{child}{index[1]}")
    return found


def _nested_models(annotation: Any, value: Any) -> list[tuple[Any, tuple[type[BaseModel], str]]]:
    """(value, (model, path suffix)) for each part of `value` the annotation says is a model."""
    model = _model_in(annotation)
    if model is None:
        return []
    if isinstance(value, list):
        return [(item, (model, f"[{i}]")) for i, item in enumerate(value)]
    return [(value, (model, ""))]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The schema model inside Optional[...], Union[...], List[...] annotations, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            model = _model_in(arg)
            if model is not None:
                return model
    return None
