"""A marshmallow Schema whose load of a valid body skips marshmallow's per-field machinery.

marshmallow's Schema._deserialize builds a closure and a kwargs dict per field, wraps each
call in _call_and_store, rebuilds an And() of the field's validators on every value and
checks `partial` with inspect: most of the CPU of loading an order body. For a mapping
whose fields all load, FastSchema._deserialize returns the same dict with the same calls
to each field's own _deserialize and validators; at the first ValidationError (or any
option it does not handle: many, partial (False too), unknown=INCLUDE) it hands the whole
mapping to marshmallow's _deserialize, which finds and stores every error as before.
Fields are pure, so loading a mapping a second time gives the same errors. A field
overriding deserialize() is called through it, for a left-out value too.

Everything else of a load (pre/post_load hooks, @validates, @validates_schema, Nested
loads through the nested schema's load) stays marshmallow's.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing
from marshmallow.fields import Field

_F_DESERIALIZE = Field.deserialize
_F_VALIDATE = Field._validate
_F_VALIDATE_MISSING = Field._validate_missing
_F_VALIDATE_ALL = Field.__dict__["_validate_all"]  # a property: And(*self.validators)

# One entry per load field: (data key, attribute, field, required, load_default,
# allow_none, validators, _deserialize or None when field.deserialize must be called).
_Plan = tuple[tuple[str, str, Field[Any], bool, Any, bool, tuple[Any, ...], Any], ...]


def _plain(field: Field[Any]) -> bool:
    """The field's deserialize is marshmallow's Field.deserialize, step for step."""
    cls = type(field)
    return (
        cls.deserialize is _F_DESERIALIZE
        and cls._validate is _F_VALIDATE
        and cls._validate_missing is _F_VALIDATE_MISSING
        and getattr(cls, "_validate_all", None) is _F_VALIDATE_ALL
        and not field.pre_load
        and not field.post_load
    )


class FastSchema(Schema):
    _fast_plan: _Plan | None = None
    _fast_keys: frozenset[str] = frozenset()

    def _build_fast_plan(self) -> _Plan:
        plan = []
        for attr_name, field in self.load_fields.items():
            data_key = field.data_key if field.data_key is not None else attr_name
            key = field.attribute or attr_name
            if "." in key:
                raise _Unsupported
            plan.append((
                data_key,
                key,
                field,
                field.required,
                field.load_default,
                field.allow_none,
                tuple(field.validators),
                field._deserialize if _plain(field) else None,
            ))  # fmt: skip
        self._fast_keys = frozenset(p[0] for p in plan)
        return tuple(plan)

    def _deserialize(
        self,
        data: Any,
        *,
        error_store: Any,
        many: bool = False,
        partial: Any = None,
        unknown: Any = RAISE,
        index: Any = None,
    ) -> Any:
        plan = self._fast_plan
        if plan is None:
            try:
                plan = self._fast_plan = self._build_fast_plan()
            except _Unsupported:
                plan = self._fast_plan = ()
        if (
            many
            # partial=False too is handed down to Nested fields (a nested schema's own
            # partial=True then no longer applies): marshmallow's loop does that.
            or partial is not None
            or type(data) is not dict
            or not plan
            or (unknown != EXCLUDE and (unknown != RAISE or not self._fast_keys.issuperset(data)))
        ):
            return super()._deserialize(
                data, error_store=error_store, many=many, partial=partial, unknown=unknown,
                index=index,
            )  # fmt: skip
        result = self.dict_class()
        try:
            for data_key, key, field, required, default, allow_none, validators, load in plan:
                raw = data.get(data_key, missing)
                if load is None:
                    # Called for a left-out value too: its own deserialize may use it.
                    value = field.deserialize(raw, data_key, data)
                    if value is missing:
                        continue
                elif raw is missing:
                    if required:
                        raise ValidationError("")
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
                elif raw is None:
                    if not allow_none:
                        raise ValidationError("")
                    value = None
                else:
                    value = load(raw, data_key, data)
                    for validator in validators:
                        validator(value)
                result[key] = value
        except ValidationError:
            return super()._deserialize(
                data, error_store=error_store, many=many, partial=partial, unknown=unknown,
                index=index,
            )  # fmt: skip
        return result


class _Unsupported(Exception):
    pass


__all__ = ["FastSchema", "fields"]
