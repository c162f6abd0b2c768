"""Every route of alarms: the API and the console."""

from __future__ import annotations

from fastapi import APIRouter

from dutydesk.alarms.api import router as api_router
from dutydesk.alarms.pages import router as pages_router

router = APIRouter()
router.include_router(api_router)
router.include_router(pages_router)
