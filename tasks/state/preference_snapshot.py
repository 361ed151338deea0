"""The daily run's merge of the customers' preferences (``preferences.py``) into the day's snapshot.

Two things, before the profile is built: the profile facts a customer gave (birthday, gender, pets) fill the
customers table where the shop's own data leaves them empty (the shop's data wins when present: an unknown
gender counts as empty), so the birthday trigger, the gender-based holiday steps and ``pets`` in segment
conditions see them; and the records' choices (topics and channels off, frequency, pause) are written beside
the day's tables (``PREFERENCES_FILE``) for the planner's preference gate. The records are the current ones,
as suppressions are: a backfill never sends what a customer has since turned off.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.snapshot import read_table
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Gender, Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.state.backend import open_state
from tasks.state.preferences import PREFERENCES_FILE, Preferences

# The planner's copy: one row per customer, topics and channels comma-separated, paused_until an ISO day or empty.
PREFERENCE_COLUMNS = ("customer_id", "topics_off", "channels_off", "frequency", "paused_until")


def preferences_frame(records: list[Preferences]) -> pd.DataFrame:
    """The records' choices as the planner reads them (``PREFERENCE_COLUMNS``); no profile facts."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r.customer_id for r in records], dtype=object),
            "topics_off": pd.Series([",".join(sorted(r.topics_off)) for r in records], dtype=object),
            "channels_off": pd.Series([",".join(sorted(r.channels_off)) for r in records], dtype=object),
            "frequency": pd.Series([r.frequency for r in records], dtype=object),
            "paused_until": pd.Series(
                [r.paused_until.isoformat() if r.paused_until else "" for r in records], dtype=object
            ),
        },
        columns=list(PREFERENCE_COLUMNS),
    )


def fill_profile_facts(customers: pd.DataFrame, records: list[Preferences]) -> pd.DataFrame:
    """The customers table with the facts the records give filled in where the shop's data has none.

    ``birth_date`` and ``gender`` are filled only where missing (``unknown`` for gender); ``pets`` is added
    (cat, dog, none; missing where nobody said), and a ``pets`` column the shop gives keeps its values.
    """
    out = customers.copy()
    if "pets" not in out.columns:
        out["pets"] = pd.Series(pd.NA, index=out.index, dtype="string")
    if not records:
        return out
    facts = pd.DataFrame(
        {
            "birthday": [pd.Timestamp(r.birthday) if r.birthday else pd.NaT for r in records],
            "gender": [r.gender for r in records],
            "pets": [r.pets for r in records],
        },
        index=pd.Index([r.customer_id for r in records], dtype=object),
    )
    ids = out["customer_id"].astype(str)
    given = facts.reindex(ids.to_numpy())
    born = pd.to_datetime(given["birthday"]).to_numpy()
    missing_birthday = out["birth_date"].isna().to_numpy()
    out["birth_date"] = out["birth_date"].mask(missing_birthday & pd.notna(born), pd.Series(born, index=out.index))
    gender = pd.Series(given["gender"].to_numpy(), index=out.index)
    unknown = out["gender"].isna() | (out["gender"].astype(str) == Gender.UNKNOWN.value)
    out["gender"] = out["gender"].mask(unknown & gender.notna(), gender)
    pets = pd.Series(given["pets"].to_numpy(), index=out.index)
    out["pets"] = out["pets"].astype("string").mask(out["pets"].isna() & pets.notna(), pets.astype("string"))
    return out


@task(cache_policy=NO_CACHE)
def merge_preferences(paths: RunPaths, as_of: date, settings: Settings) -> int:
    """Fill the day's customers table with the facts customers gave and write their choices; return how many."""
    records = open_state(settings, dynamodb_client).preferences.all()
    customers = fill_profile_facts(read_table(paths, Table.CUSTOMERS), records)
    customers.to_parquet(paths.table(Table.CUSTOMERS), index=False)
    path = paths.table(Table.ORDERS).with_name(PREFERENCES_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    preferences_frame(records).to_parquet(path, index=False)
    return len(records)
