"""Typed command arguments: one camelCase object in, an attrs instance out, or InvalidArguments.

pygls passes executeCommand arguments positionally and ignores defaults, so every leo command
takes exactly one object and checks it here, naming the field that is wrong.
"""

from __future__ import annotations

import types as pytypes
from collections.abc import Sequence
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs

from leo_lsp.errors import InvalidArguments
from leo_lsp.settings import camel_case

T = TypeVar("T")


def _check(value: Any, tp: Any, field: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, pytypes.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _check(value, opt, field)
            except InvalidArguments as exc:
                errors.append(exc)
        raise errors[0] if errors else InvalidArguments(f"{field}: invalid value", field=field)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise InvalidArguments(
                f"{field}: expected a list, got {type(value).__name__}", field=field
            )
        return [_check(v, item, f"{field}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidArguments(
                f"{field}: expected an object, got {type(value).__name__}", field=field
            )
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidArguments(
                f"{field}: expected true or false, got {value!r:.60}", field=field
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArguments(f"{field}: expected an integer, got {value!r:.60}", field=field)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArguments(f"{field}: expected a number, got {value!r:.60}", field=field)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InvalidArguments(f"{field}: expected a string, got {value!r:.60}", field=field)
        return value
    if tp is Any:
        return value
    raise InvalidArguments(f"{field}: unsupported type", field=field)


def parse(cls: type[T], args: Sequence[Any] | None) -> T:
    """Structure the single argument object of a command into `cls`."""
    if not args:
        raw: Any = {}
    elif len(args) > 1:
        raise InvalidArguments(
            f"expected one argument object, got {len(args)} arguments", field="arguments"
        )
    else:
        raw = args[0]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidArguments(
            f"expected an argument object, got {type(raw).__name__}", field="arguments"
        )
    fields = attrs.fields_dict(cls)  # type: ignore[arg-type]
    by_wire = {camel_case(name): name for name in fields}
    unknown = [k for k in raw if k not in by_wire and k not in fields]
    if unknown:
        raise InvalidArguments(
            f"{unknown[0]}: unknown argument (expected one of {', '.join(sorted(by_wire))})",
            field=unknown[0],
        )
    kwargs: dict[str, Any] = {}
    for wire, name in by_wire.items():
        key = wire if wire in raw else name if name in raw else None
        f = fields[name]
        if key is None:
            if f.default is attrs.NOTHING:
                raise InvalidArguments(f"{wire}: required", field=wire)
            continue
        kwargs[name] = _check(raw[key], f.type, wire)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise InvalidArguments(str(exc)) from exc


@attrs.define
class IndexWorkspaceArgs:
    force: bool = False
    project_id: str | None = None


@attrs.define
class UriArgs:
    uri: str


@attrs.define
class ProjectArgs:
    project_id: str | None = None


@attrs.define
class DecisionsArgs:
    uri: str | None = None
    limit: int = 100


@attrs.define
class NoArgs:
    pass


for _cls in (IndexWorkspaceArgs, UriArgs, ProjectArgs, DecisionsArgs, NoArgs):
    attrs.resolve_types(_cls)
