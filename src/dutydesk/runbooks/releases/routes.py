"""Every route of releases and broadcasts: the API and the console."""

from __future__ import annotations

from fastapi import APIRouter

from dutydesk.runbooks.releases.api import router as api_router
from dutydesk.runbooks.releases.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
