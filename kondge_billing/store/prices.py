"""The ratings calls are priced by, kept in each process by their ids.

The call path's functions name a call's rating by its ids: the tariff
version, the plan, the destination and the prefix that matched
(kondge.rating_choice at stage 2 and for a call nobody authorised, the
hold's or the CDR's ids at the Stop). A loaded tariff version never changes
(sql/functions/tariff_unchanged.sql refuses it), so the rating of a version's
plan and destination, read once with kondge.radius_price, is the rating of
every later call to that destination under that plan; each call adds its
own facts (the prefix its number matched, its category, access number,
caller and gateway: surcharges and discounts select by them).
The database builds no rating for a call, and the process parses none,
once the ids have been seen. The kept ratings are forgotten whenever the
process connects to the database anew (after a restore or a take-over the
same ids may name other versions).
"""

from dataclasses import dataclass, replace

from ..rating.codec import context_from_json
from ..rating.engine import RatingContext

#: ratings kept at most (about 1 kB each: 16 MB at most a process, within
#: the 300 MB a FreeRADIUS process may take); the memo is emptied when full
#: and fills again by the calls that follow (one read each)
MEMO_SIZE = 16384
_KEPT: dict = {}
_NONE = object()


@dataclass(frozen=True)
class CallRating:
    """A call's rating (None: its ids have no rate) and the ids that name it:
    version_id, plan_id, destination_id, prefix and currency (empty without a
    rating), as the call's hold and CDR keep them."""

    context: RatingContext | None
    ids: dict


NO_RATING = CallRating(None, {})


def call_rating(cur, version_id, plan_id, destination_id, prefix, *, category=None,
                access_number=None, caller=None, gateway=None) -> CallRating:
    """The rating of these ids for one call with these facts (`gateway`: its
    name); NO_RATING when the ids are missing or have no rate. A rating not
    kept yet is read on `cur`."""
    if version_id is None or plan_id is None or destination_id is None:
        return NO_RATING
    key = (version_id, plan_id, destination_id)
    kept = _KEPT.get(key)
    if kept is None:
        cur.execute("SELECT kondge.radius_price(%s, %s, %s, %s) AS rating", key + (prefix,))
        kept = context_from_json(cur.fetchone()["rating"]) or _NONE
        if len(_KEPT) >= MEMO_SIZE:
            _KEPT.clear()
        _KEPT[key] = kept
    if kept is _NONE:
        return NO_RATING
    # a context of its own (the engine's scratch space serves one call)
    context = replace(kept, prefix=prefix, category=category, access_number=access_number,
                      caller=caller, gateway=gateway)
    return CallRating(context, {"version_id": version_id, "plan_id": plan_id,
                                "destination_id": destination_id, "prefix": prefix,
                                "currency": context.currency})


def from_row(cur, row: dict, **facts) -> CallRating:
    """The rating a call-path function's answer names (its rating_version_id,
    rating_plan_id, rating_destination_id and rating_prefix columns, taken
    out of `row`), with the call's facts (call_rating's keywords)."""
    return call_rating(cur, row.pop("rating_version_id"), row.pop("rating_plan_id"),
                       row.pop("rating_destination_id"), row.pop("rating_prefix"), **facts)


def forget():
    """Drop every kept rating: a new connection to the database does (a
    database restored from a backup, or a standby that took over, may have
    given the ids to other versions; store/db.py)."""
    _KEPT.clear()
