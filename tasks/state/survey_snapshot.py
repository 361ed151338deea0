"""The daily run's copy of the survey answers: written into the run's snapshot before the profile is built.

The profile is below the state in the layering and may not read the store; it reads this file as data, like
any table of the day (``tasks/profile/unhappy.py``: detractors become ``low_score`` incidents), and the
planner's promoters trigger reads it too. No comments in the copy: they stay in the store.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.profile.unhappy import ANSWER_COLUMNS, SURVEY_ANSWERS_FILE
from tasks.state.backend import open_state
from tasks.state.surveys import SurveyAnswer

# how far back the daily run reads answers: the longest a detractor's incident or a promoter's thanks can matter
ANSWERS_LOOKBACK_DAYS = 400


def answers_frame(answers: list[SurveyAnswer]) -> pd.DataFrame:
    """Answers as a frame of ``ANSWER_COLUMNS`` (no comments: they stay in the store)."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series([a.customer_id for a in answers], dtype=object),
            "order_id": pd.Series([a.order_id for a in answers], dtype=object),
            "score": pd.Series([a.score for a in answers], dtype="int64"),
            "answered_at": pd.to_datetime([a.answered_at for a in answers], utc=True),
        },
        columns=list(ANSWER_COLUMNS),
    )


@task(cache_policy=NO_CACHE)
def snapshot_answers(paths: RunPaths, as_of: date, settings: Settings) -> int:
    """Write the survey answers given up to the end of ``as_of`` into the run's snapshot; return how many."""
    end = datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=UTC)
    found = open_state(settings, dynamodb_client).surveys.answers(end - timedelta(days=ANSWERS_LOOKBACK_DAYS), end)
    path = paths.table(Table.ORDERS).with_name(SURVEY_ANSWERS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    answers_frame(found).to_parquet(path, index=False)
    return len(found)
