"""A dataset upload (`POST /api/v1/datasets`, multipart): the file (bars as CSV; an option chain
as CSV or Parquet, `kind=option_chain`) and what it holds."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import UploadFile
from pydantic import AfterValidator, Field, model_validator

from domain.bar_formats import FIELDS, FORMATS, FormatError, check_import, parse_columns
from domain.market import CALENDARS
from services.gateway.body import ErrorText, RequestModel, problem, raise_problems
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


def _format(name: str) -> str:
    try:
        return check_import(name, "")[0]
    except FormatError as exc:
        raise problem(str(exc)) from None


def _columns(text: str) -> str:
    try:
        parse_columns(text)
    except FormatError as exc:
        raise problem(str(exc)) from None
    return text


class DatasetUpload(RequestModel):
    """Bars of one ticker at one interval, or an option chain on one underlying; a new version
    when the pair exists."""

    file: Annotated[UploadFile, ErrorText("a file is required"), Field(json_schema_extra={"format": "binary"})] = Field(
        description="bars: CSV in the given format; generic: a header timestamp,open,high,low,close,volume (any case "
        "and order; ISO dates or date-times, or Unix times). option_chain: CSV or Parquet with the columns "
        "timestamp, expiry, strike, option_type, open, high, low, close, volume (optional oi, iv)"
    )
    kind: Literal["bars", "option_chain"] = Field(
        "bars",
        description="bars (default) or option_chain: bars of the option contracts of the underlying `ticker` "
        "(option_type CE or PE; C, P, call and put are accepted)",
    )
    ticker: Ticker
    interval: Interval
    calendar: Literal[CALENDARS] = Field(  # type: ignore[valid-type]
        "continuous", description="continuous (24/7, 365 days a year) or sessions (business days, 252)"
    )
    timezone: Annotated[Text, AfterValidator(_timezone)] | None = Field(None, description="IANA zone of naive timestamps (default UTC)")
    format: Annotated[Text, AfterValidator(_format)] | None = Field(
        None,
        description="the file's format: generic (default: the header above, TradingView's chart export too), yahoo "
        "(Yahoo Finance download), binance (data.binance.vision klines), metatrader (MT5/MT4 Export bars)",
        json_schema_extra={"enum": list(FORMATS)},
    )
    columns: Annotated[Text, AfterValidator(_columns)] | None = Field(
        None,
        description=f"a generic file's columns by name: field:Column,... (fields {', '.join(FIELDS)}; header names "
        "in any case; fields left out are found by their usual names), e.g. timestamp:Day,close:Last",
    )

    @model_validator(mode="after")
    def _format_and_columns(self) -> DatasetUpload:
        if self.kind == "option_chain":
            raise_problems(type(self), [
                {"field": name, "message": "applies to bar datasets, not to option chains"}
                for name in ("format", "columns") if getattr(self, name)
            ])
        if self.columns and self.format:
            try:
                check_import(self.format, self.columns)
            except FormatError as exc:
                raise_problems(type(self), [{"field": "columns", "message": str(exc)}])
        return self
