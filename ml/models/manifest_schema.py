"""The JSON schema of a model manifest (pydantic, strict): wrong types are one readable error.

:meth:`ml.models.manifest.ModelManifest.from_dict` checks the raw JSON object against
:class:`ManifestSchema` before it builds the dataclass, so ``"std": ["a"]``, ``"thresholds": [...]``,
``"architecture": [...]`` or ``"input_size": "224"`` say what is wrong instead of failing later.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(allow_inf_nan=False, gt=0)]
_STRICT = ConfigDict(strict=True, extra="ignore")


class NormalisationSchema(BaseModel):
    model_config = _STRICT
    mean: list[Finite] = Field(min_length=1, max_length=3)
    std: list[Positive] = Field(min_length=1, max_length=3)


class DerivationSchema(BaseModel):
    model_config = _STRICT
    pixels: Literal["display", "xrv"] = "display"
    modality_lut: bool = True
    voi: Literal["default", "auto", "none"] = "default"
    invert_monochrome1: bool = True
    scale: Literal["unit"] = "unit"
    resize: Literal["squash", "letterbox", "center_crop"] = "squash"
    interpolation: Literal["bilinear", "area", "nearest", "xrv"] = "bilinear"


class ManifestSchema(BaseModel):
    model_config = _STRICT
    format_version: int = 1
    name: str
    architecture: str
    labels: list[str] = Field(min_length=1, max_length=10_000)
    task: Literal["multiclass", "multilabel"] = "multiclass"
    input_size: int = 224
    channels: int = 1
    normalisation: str | NormalisationSchema | None = None
    input_derivation: DerivationSchema | None = None
    thresholds: dict[str, Finite] | None = None
    calibration: str | None = None
    hidden_labels: list[str] | None = None
    provenance: dict[str, Any] | None = None
    temperature: Finite | None = None
    scope: dict[str, Any] | None = None
    version: str | None = None
    description: str | None = None
    disclaimer: str | None = None


_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "literal_error": "one of the known values",
    "greater_than": "a positive number",
    "too_short": "a non-empty list",
    "too_long": "a shorter list",
    "missing": "present",
}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def check_manifest_json(data: dict[str, Any]) -> str | None:
    """None when ``data`` fits the schema, else one sentence saying the first problem."""
    try:
        ManifestSchema.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        err = max(errors, key=lambda e: len(e["loc"]))  # in a union, the branch that got furthest
        tags = ("str", "int", "float", "none")
        parts = [str(p) for p in err["loc"] if not (str(p).endswith("Schema") or str(p) in tags)]
        where = ".".join(parts) or "the manifest"
        kind = err["type"]
        if kind == "missing":
            return f"'{where}' is missing"
        want = _WORDS.get(kind, "valid")
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return f"'{where}' must be {want}, got {_shown(err.get('input'))}{more}"
    return None
