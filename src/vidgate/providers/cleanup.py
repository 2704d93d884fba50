"""Deleting an upstream job we no longer want (cancelled, or past its deadline)."""

from __future__ import annotations

import asyncio
import logging

from vidgate.logs import ref
from vidgate.providers.base import JobRef, Provider, RateLimited, UpstreamError, UpstreamRejected

logger = logging.getLogger(__name__)


async def delete_job(
    provider: Provider,
    external_id: str,
    *,
    video_id: str,
    poll_handle: str | None = None,
    tries: int = 4,
    pause: float = 0.25,
) -> bool:
    """Cancel (or delete) the job, retrying transient failures a few times; True once it
    is gone. A provider that declares no cancel is left alone.

    A job left running costs money, so one failed call is not the end of it; a refusal
    (4xx) is, since asking again will not change the answer.
    """
    who = ref(video_id, external_id)
    if not provider.features.cancel:
        logger.info("%s cannot cancel jobs; %s runs to its end", provider.name, who)
        return False
    for attempt in range(1, tries + 1):
        try:
            await provider.cancel(JobRef(external_id=external_id, poll_handle=poll_handle))
            return True
        except UpstreamRejected as exc:
            logger.info("the upstream refused to delete %s: %s", who, exc.message, extra=who.extra)
            return False
        except UpstreamError as exc:
            if attempt == tries:
                logger.warning(
                    "could not delete the upstream job of %s: %s", who, exc.message, extra=who.extra
                )
                return False
            wait = pause * 2 ** (attempt - 1)
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                wait = max(wait, exc.retry_after)  # the upstream said when; obey it
            await asyncio.sleep(wait)
    return False
