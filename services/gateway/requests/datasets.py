"""A dataset upload (`POST /api/v1/datasets`, multipart): the CSV file and what it holds."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import UploadFile
from pydantic import AfterValidator, Field

from domain.market import CALENDARS
from services.gateway.body import ErrorText, RequestModel, problem
from services.gateway.requests.fields import Interval, Text, Ticker

MAX_TIMEZONE_LENGTH = 64


def _timezone(name: str) -> str:
    try:
        if len(name) > MAX_TIMEZONE_LENGTH:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, or a malformed key
        raise problem("unknown IANA timezone") from None
    return name


class DatasetUpload(RequestModel):
    """Bars of one ticker at one interval; a new version when the pair exists."""

    file: Annotated[UploadFile, ErrorText("a CSV file is required"), Field(json_schema_extra={"format": "binary"})] = Field(
        description="CSV with header timestamp,open,high,low,close,volume (ISO dates or datetimes)"
    )
    ticker: Ticker
    interval: Interval
    calendar: Literal[CALENDARS] = Field(  # type: ignore[valid-type]
        "continuous", description="continuous (24/7, 365 days a year) or sessions (business days, 252)"
    )
    timezone: Annotated[Text, AfterValidator(_timezone)] | None = Field(None, description="IANA zone of naive timestamps (default UTC)")
