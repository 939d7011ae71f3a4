"""The JSON the service answers, as pydantic models: they make the OpenAPI schema at ``/openapi.json``."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable kind, e.g. not_an_image, too_large, queue_full, not_ready")
    message: str = Field(description="what went wrong, in one line")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class MatchCandidate(BaseModel):
    brand: str
    reference: str = Field(description="the brand's best reference photo, relative to the catalog root")
    score: float = Field(description="P(the listing shows this brand's product)")
    copy_score: float = Field(description="P(the listing is an edited copy of this reference)")
    inliers: int = Field(description="SIFT inliers with the reference; -1 when not verified")
    keypoints: Optional[list[list[float]]] = Field(
        default=None, description="verified inlier pairs [listing x, y, reference x, y] in [0, 1] (best match only)")


class MatchResponse(BaseModel):
    """One listing image's result: the fields of a scan's results row, plus what made the decision."""

    listing: str = Field(description="the uploaded file's name (never used as a path), or 'image'")
    listing_id: str = ""
    title: str = ""
    price: str = ""
    status: str = Field(description="ok, or why the image could not be read (not_an_image, too_large, ...)")
    error: str = ""
    verdict: str = Field(description="copy, same_product or no_match; empty when the image failed")
    brand: str = ""
    reference: str = ""
    score: Optional[float] = None
    suspicion: Optional[float] = None
    explanation: str = ""
    position: int = Field(description="the image's place in the request, from 0")
    checks: str = Field(description="how far the cascade went: full, global or dismissed; empty when failed")
    matches: list[MatchCandidate] = []
    index_version: Optional[str] = Field(default=None, description="the index version that matched the image")
    model: Optional[str] = Field(default=None, description="backbone@weights/runtime family of the index")


class BatchResponse(BaseModel):
    results: list[MatchResponse]


class IndexResponse(BaseModel):
    version: str
    created: Optional[str] = None
    model: str
    runtime: Optional[str] = None
    region_runtime: Optional[str] = None
    operating_threshold: float
    references: int
    brands: dict[str, int]


class ReloadResponse(BaseModel):
    reloaded: bool
    version: str


class HealthResponse(BaseModel):
    status: str
