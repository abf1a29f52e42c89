"""Names for a long-document run's events (engine.docs.summarize_events), for app/chat.

The flow reads the events' plain fields; only which event it is needs the engine's classes,
and those are imported on first use (the window starts before the engine is imported).
"""

from __future__ import annotations

from functools import cache

PLAN, PART_STARTED, PART_DONE, COMBINE, DONE = "plan", "started", "done", "combine", "summary"


@cache
def _kinds() -> dict[type, str]:
    from engine.docs.summarize_events import (
        CombineStarted,
        PartDone,
        PartStarted,
        SummaryDone,
        SummaryPlan,
    )

    return {
        SummaryPlan: PLAN,
        PartStarted: PART_STARTED,
        PartDone: PART_DONE,
        CombineStarted: COMBINE,
        SummaryDone: DONE,
    }


def kind_of(event: object) -> str | None:
    """PLAN, PART_STARTED, PART_DONE, COMBINE or DONE; None for any other event."""
    return _kinds().get(type(event))
