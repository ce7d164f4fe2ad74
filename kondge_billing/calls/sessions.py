"""Live calls: holds (reservations) and the calls up. Owns the reservation SQL.

A hold is a call's authorisation (sql/functions/radius_hold.sql): made at
stage 2, live from the billed leg's Start, settled and removed by its Stop
(calls.settle). An unstarted hold stops reserving money once its call could
no longer be running, and lapses; a live call whose Stop never comes is
closed by the sweep (service.Billing.sweep).
"""

import secrets

from ..store import prices
from ..store.prepared import Prepared
from ..store.gateways import Gateway

# The gateway of an overdue call, removed or not (its call is settled anyway).
GATEWAY_COLUMNS = ", ".join(f"g.{c} AS gw_{c}" for c in (
    "id", "name", "dialect", "message_authenticator", "billed_leg",
    "prepaid_billing_model", "country_code", "international_prefix", "national_prefix",
    "language_map", "revision", "accounting_start")) + \
    ", host(g.address) AS gw_address, '' AS gw_secret"

# A hold kept after it lapsed, so that a very late Start still finds its call.
LAPSED_KEPT = "7 days"
# Stage 1's record of a call's access number, kept for its stage 2 and Stop.
LOGIN_KEPT = "1 day"


def new_hold_id() -> str:
    """A call id for an authorisation that carried no h323-conf-id."""
    return "auth:" + secrets.token_hex(12)


HOLD = Prepared("kondge_radius_hold", """
SELECT * FROM kondge.radius_hold(
    %(card_id)s, %(gateway_id)s, %(call_id)s, %(caller)s, %(destination)s, %(access_number)s,
    %(category)s, %(version_id)s, %(plan_id)s, %(destination_id)s, %(prefix)s, %(currency)s,
    %(amount)s, %(seconds)s, %(hold_ttl)s)
""")


def hold(cur, card_id, gateway_id, call_id, caller, destination, access_number, category,
         price: dict, amount, seconds, hold_ttl) -> dict:
    """kondge.radius_hold(): reserve `amount` for the call as authorised, or say why not.

    `price` names what priced it: version_id, plan_id, destination_id,
    prefix and currency (store/prices.py: CallRating.ids)."""
    HOLD.run(cur, {
        "card_id": card_id, "gateway_id": gateway_id, "call_id": call_id, "caller": caller,
        "destination": destination, "access_number": access_number, "category": category,
        "version_id": price.get("version_id"), "plan_id": price.get("plan_id"),
        "destination_id": price.get("destination_id"), "prefix": price.get("prefix"),
        "currency": price.get("currency"), "amount": amount, "seconds": seconds,
        "hold_ttl": hold_ttl})
    return cur.fetchone()


def live(cur, card_number: str | None = None) -> list[dict]:
    """The card's (or every card's) active holds and live calls, oldest first."""
    cur.execute(
        """SELECT r.id, c.number AS card, r.caller, r.destination, g.name AS gateway,
                  r.state, r.created_at, r.started_at, r.granted_seconds, r.amount,
                  r.interim_seconds, r.call_id, r.call_key, r.access_number, r.flags,
                  CASE WHEN r.started_at IS NULL THEN NULL
                       ELSE floor(extract(epoch FROM now() - r.started_at))::integer
                  END AS elapsed
             FROM kondge.v_active_reservation r
             JOIN kondge.card c ON c.id = r.card_id
             JOIN kondge.gateway g ON g.id = r.gateway_id
            WHERE %(card)s::text IS NULL OR c.number = %(card)s
            ORDER BY r.created_at""", {"card": card_number})
    return cur.fetchall()


def lapse_holds(cur) -> int:
    """Unstarted holds whose call could no longer be running reserve nothing
    more; lapsed ones are forgotten after LAPSED_KEPT, stage 1's records
    after LOGIN_KEPT. Returns how many lapsed now."""
    cur.execute("""UPDATE kondge.reservation SET state = 'lapsed'
                    WHERE state = 'held'
                      AND hold_expires_at + make_interval(secs => granted_seconds) <= now()""")
    lapsed = cur.rowcount
    cur.execute(f"""DELETE FROM kondge.reservation
                     WHERE state = 'lapsed' AND hold_expires_at < now() - interval '{LAPSED_KEPT}'""")
    cur.execute(f"DELETE FROM kondge.call_login WHERE at < now() - interval '{LOGIN_KEPT}'")
    return lapsed


def overdue(cur, grace_seconds: int, limit: int = 1000) -> list[dict]:
    """Live calls past their granted time plus the grace: their Stop is lost.

    Each row has its gateway as `gateway` (a Gateway, secret left out) and
    the rating it was authorised with (`rating`, a prices.CallRating)."""
    cur.execute(
        f"""SELECT r.id, r.call_id, r.call_key, r.acct_session_id, r.card_id,
                   r.granted_seconds, r.interim_seconds, r.amount, r.caller, r.destination,
                   r.access_number, r.category, r.tariff_version_id, r.plan_id,
                   r.destination_id, r.rate_prefix, r.currency, r.created_at, r.started_at,
                   c.number AS card_number,
                   (SELECT l.leg FROM kondge.call_leg l
                     WHERE l.gateway_id = r.gateway_id AND l.call_key = r.call_key
                       AND l.acct_session_id = coalesce(r.acct_session_id, '')
                     ORDER BY l.id LIMIT 1) AS leg,
                   {GATEWAY_COLUMNS}
             FROM kondge.reservation r JOIN kondge.card c ON c.id = r.card_id
             JOIN kondge.gateway g ON g.id = r.gateway_id
            WHERE r.state = 'live'
              AND r.started_at + make_interval(secs => r.granted_seconds + %s) <= now()
            ORDER BY r.started_at LIMIT %s""", (grace_seconds, limit))
    rows = []
    for row in cur.fetchall():
        gw = {k[3:]: row.pop(k) for k in list(row) if k.startswith("gw_")}
        row["gateway"] = Gateway(**gw)
        rows.append(row)
    for row in rows:
        row["rating"] = prices.call_rating(
            cur, row["tariff_version_id"], row["plan_id"], row["destination_id"],
            row["rate_prefix"], category=row["category"], access_number=row["access_number"],
            caller=row["caller"], gateway=row["gateway"].name)
    return rows
