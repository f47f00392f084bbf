"""What every section of a recipe is: the task kinds' options (tasks/) and the run's own
sections (cluster/config.py) alike."""
from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator


class RecipeSection(BaseModel):
    """A section of a recipe: unknown keys refused, frozen once read, and no `true` where a
    number is wanted (pydantic would read it as 1; a recipe that says `iterations: true`
    means something else)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and _wants_number(field.annotation):
                    raise ValueError(f"{name}: a number is wanted, not {str(value).lower()}")
        return data


def _wants_number(annotation: Any) -> bool:
    """int or float, optionally None, and nothing else (not bool, a list of numbers, or a union with str)."""
    kinds = set(get_args(annotation)) - {type(None)} if get_origin(annotation) in (Union, UnionType) else {annotation}
    return bool(kinds) and kinds <= {int, float}
