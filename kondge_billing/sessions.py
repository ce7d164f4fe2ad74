"""Live calls: reservations (holds) and sessions. Owns the reservation SQL."""

import secrets

from .gateways import Gateway

# The gateway of an overdue call, removed or not (its call is settled anyway).
GATEWAY_COLUMNS = ", ".join(f"g.{c} AS gw_{c}" for c in (
    "id", "name", "dialect", "message_authenticator", "billed_leg",
    "prepaid_billing_model", "country_code", "international_prefix", "national_prefix",
    "language_map")) + ", host(g.address) AS gw_address, '' AS gw_secret"


def new_hold_id() -> str:
    """A call id for an authorisation that carried no h323-conf-id."""
    return "auth:" + secrets.token_hex(12)


def hold(cur, card_id, gateway_id, call_id, caller, destination, amount, seconds,
         hold_ttl) -> dict:
    """kondge.radius_hold(): reserve `amount` for the call, or say why not."""
    cur.execute("SELECT * FROM kondge.radius_hold(%s, %s, %s, %s, %s, %s, %s, %s)",
                (card_id, gateway_id, call_id, caller, destination, amount, seconds, hold_ttl))
    return cur.fetchone()


def live(cur, card_number: str | None = None) -> list[dict]:
    """The card's (or every card's) active reservations, oldest first."""
    cur.execute(
        """SELECT r.id, c.number AS card, r.caller, r.destination, g.name AS gateway,
                  r.state, r.created_at, r.started_at, r.granted_seconds, r.amount,
                  r.interim_seconds, r.call_id, r.flags,
                  CASE WHEN r.started_at IS NULL THEN NULL
                       ELSE floor(extract(epoch FROM now() - r.started_at))::integer
                  END AS elapsed
             FROM kondge.v_active_reservation r
             JOIN kondge.card c ON c.id = r.card_id
             JOIN kondge.gateway g ON g.id = r.gateway_id
            WHERE %(card)s::text IS NULL OR c.number = %(card)s
            ORDER BY r.created_at""", {"card": card_number})
    return cur.fetchall()


def drop_expired_holds(cur) -> int:
    """Forget holds whose call never started (they already count for nothing)."""
    cur.execute("DELETE FROM kondge.reservation WHERE state = 'held' AND hold_expires_at <= now()")
    return cur.rowcount


def overdue(cur, grace_seconds: int, limit: int = 1000) -> list[dict]:
    """Live calls past their granted time plus the grace: their Stop is lost.

    Each row has its gateway as `gateway` (a Gateway, secret left out)."""
    cur.execute(
        f"""SELECT r.id, r.call_id, r.granted_seconds, r.interim_seconds,
                  r.caller, r.destination, r.started_at, c.number AS card_number,
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
    return rows
