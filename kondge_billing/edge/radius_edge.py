"""The RADIUS edge: pairs in, (result, reply pairs, control pairs) out.

The hook in mods-config/python calls these two functions and maps the
result name to radiusd's integer code. This is the one place that turns
outcomes into answers:

| outcome                         | result    | what the gateway gets |
|---------------------------------|-----------|-----------------------|
| Login / Grant                   | ok        | Access-Accept with the dialect's credit pairs |
| Refusal (a billing "no")        | reject    | Access-Reject + return code + Reply-Message, no credit |
| record stored, or a repeat      | ok        | Accounting-Response |
| record the database cannot take | ok        | Accounting-Response, once the spool has it on disk (fsynced) |
| ...and the spool cannot either  | no-answer | nothing: the gateway sends it again (logged loudly) |
| record the call path cannot process (a bug) | ok | Accounting-Response; kept in kondge.unprocessed_record (kondge parked) |
| record with no or an unknown Acct-Status-Type | ok | Accounting-Response, once kept in kondge.unprocessed_record (or, the database down, the spool) |
| overload (overload.py), stage 1 only | no-answer | at once, without the database: nothing, as when the database is unreachable (or, with KONDGE_AUTH_WHEN_DB_DOWN=reject, Access-Reject code 8); a stage 2 (Billing.continues_call) is always served |
| database unreachable (Access)   | no-answer | nothing: the gateway retries / tries its second server (or, with KONDGE_AUTH_WHEN_DB_DOWN=reject, Access-Reject code 8) |
| unknown gateway address         | no-answer | nothing (the packet is dropped) |
| unexpected exception (Access)   | no-answer | nothing; the traceback is logged |

"no-answer" reaches FreeRADIUS as a fail with control Kondge-No-Answer
(mods-config/python/kondge_hook.py); sites-available/kondge turns it into
silence towards the gateway (policy.d/kondge, kondge_no_answer_now).
"""

import traceback
from datetime import datetime, timezone

from . import attributes
from ..errors import Overloaded, Refusal, ServiceUnavailable, Unavailable, UnknownGateway
from ..rating.money import format_amount
from .request import access_request, accounting_record, collect
from ..calls.service import Grant
from .spool import SpoolError

ACCEPT_CONTROL = ((attributes.AUTH_TYPE, ":=", "Accept"),)


def balance_text(outcome) -> str:
    if getattr(outcome, "billing", "prepaid") == "postpaid":
        return (f"Amount due {format_amount(outcome.amount_due)} {outcome.currency}, "
                f"credit remaining {format_amount(outcome.balance)} {outcome.currency}")
    return f"Balance {format_amount(outcome.balance)} {outcome.currency}"


def accept_pairs(gateway, outcome) -> tuple:
    """Stage 1: the amount that may be spent (a postpaid account's credit
    remaining), currency, language and billing model; stage 2: the time."""
    dialect = gateway.dialect
    if dialect == "generic":
        pairs = [(attributes.REPLY_MESSAGE, balance_text(outcome))]
        if isinstance(outcome, Grant):
            pairs.append((attributes.SESSION_TIMEOUT, str(outcome.seconds)))
        return tuple(pairs)
    pairs = [attributes.h323_pair(dialect, attributes.RETURN_CODE, 0)]
    if isinstance(outcome, Grant):
        pairs.append(attributes.h323_pair(dialect, attributes.CREDIT_TIME, outcome.seconds))
        return tuple(pairs)
    model = gateway.prepaid_billing_model
    if outcome.billing == "postpaid":
        model = 1 - model
    pairs += [
        attributes.h323_pair(dialect, attributes.CREDIT_AMOUNT, format_amount(outcome.balance)),
        attributes.h323_pair(dialect, attributes.CURRENCY, outcome.currency),
        attributes.h323_pair(dialect, attributes.PREFERRED_LANG, gateway.language(outcome.language)),
        attributes.h323_pair(dialect, attributes.BILLING_MODEL, model),
    ]
    if outcome.prompt_id is not None:
        pairs.append(attributes.h323_pair(dialect, attributes.PROMPT_ID, outcome.prompt_id))
    if outcome.billing == "postpaid":
        pairs.append((attributes.REPLY_MESSAGE, balance_text(outcome)))
    return tuple(pairs)


def reject_pairs(gateway, refusal: Refusal) -> tuple:
    message = (attributes.REPLY_MESSAGE, refusal.message)
    if gateway is None or gateway.dialect == "generic":
        return (message,)
    return (attributes.h323_pair(gateway.dialect, attributes.RETURN_CODE, refusal.code), message)


def unavailable_answer(billing, gateway, refusal: Refusal) -> tuple:
    """What an Access-Request gets when it cannot be served now (database
    unreachable, load shed): nothing, or with KONDGE_AUTH_WHEN_DB_DOWN=reject
    an Access-Reject with code 8."""
    if billing.auth_when_db_down == "reject" and gateway is not None:
        return "reject", reject_pairs(gateway, refusal), ()
    return "no-answer", (), ()


def handle_authorize(billing, pairs, log, overload=None) -> tuple:
    """-> ("ok" | "reject" | "no-answer", reply pairs, control pairs)."""
    gateway = None
    try:
        req = access_request(pairs)
        gateway = billing.gateways.get(req.gateway_address)
        if (overload is not None and not billing.continues_call(gateway, req)
                and overload.refuse(pairs, log)):
            # logged once an episode by Overload, not once a request
            return unavailable_answer(billing, gateway, Overloaded())
        outcome = billing.authorize(gateway, req)
        return "ok", accept_pairs(gateway, outcome), ACCEPT_CONTROL
    except Refusal as refusal:
        log("info", f"reject code {refusal.code}: {refusal.detail}")
        return "reject", reject_pairs(gateway, refusal), ()
    except Unavailable as exc:
        answer = unavailable_answer(billing, gateway, ServiceUnavailable())
        log("error", (f"reject code 8 (KONDGE_AUTH_WHEN_DB_DOWN=reject): {exc}"
                      if answer[0] == "reject" else f"no answer: {exc}"))
        return answer
    except UnknownGateway as exc:
        log("error", f"no answer: {exc}")
        return "no-answer", (), ()
    except Exception:  # noqa: BLE001 - the hook must never raise
        log("error", "unexpected error in authorize: " + traceback.format_exc())
        return "no-answer", (), ()


def handle_accounting(billing, pairs, log, overload=None, keep=None) -> str:
    """-> "ok" (answered: stored, a repeat, or kept to be stored) or
    "no-answer" (kept nowhere: the gateway sends it again).

    keep(pairs) keeps a record the database cannot take now (the spool) or
    raises SpoolError; without it (the supervisor replaying the spool) such a
    record is "no-answer" and stays where it is."""
    if overload is not None:
        try:
            overload.accounting(pairs, log)
        except Exception:  # noqa: BLE001 - overload control must never cost a record
            log("error", "overload control failed: " + traceback.format_exc())
    try:
        rec = accounting_record(pairs, datetime.now(timezone.utc))
        gateway = billing.gateways.for_accounting(rec.gateway_address)
        if rec.status == "unknown":
            why = unknown_status(pairs, gateway)
            log("error", f"accounting record set aside: {why}")
            return _park(billing, pairs, log, keep, why)
        result = billing.account(gateway, rec)
        if result.outcome == "ignored":
            log("info", f"accounting {rec.status} from {gateway.name}: nothing to record")
        elif result.outcome == "duplicate":
            log("info", f"repeated accounting record of call {result.call_id} "
                        f"leg {result.leg}: answered, nothing changed")
        if rec.flags:
            log("info", f"accounting record flagged {','.join(rec.flags)}")
        return "ok"
    except Unavailable as exc:
        return _keep(pairs, log, keep, f"the database cannot take it now ({exc})")
    except UnknownGateway as exc:
        if keep is not None:
            log("error", f"accounting not answered: {exc}")
            return "no-answer"
        return _park(billing, pairs, log, keep, f"no such gateway: {exc}")
    except Exception:  # noqa: BLE001 - the hook must never raise
        error = traceback.format_exc()
        log("error", "unexpected error in accounting: " + error)
        return _park(billing, pairs, log, keep, error)


def unknown_status(pairs, gateway) -> str:
    """Why a record with no or an unknown Acct-Status-Type is set aside: the
    call path stores Start, Stop and Interim-Update and answers
    Accounting-On/Off; anything else is kept for the operator to see, not
    dropped."""
    sent = collect(pairs).get(attributes.ACCT_STATUS_TYPE)
    what = f"Acct-Status-Type {ascii(sent[0])[:40]}" if sent else "no Acct-Status-Type"
    return (f"{what} from gateway {gateway.name}: not a Start, Stop, Interim-Update or "
            "Accounting-On/Off")


def _park(billing, pairs, log, keep, error: str) -> str:
    """Keep a record the call path cannot process in kondge.unprocessed_record
    (listed and replayed by `kondge parked`), or else in the spool."""
    try:
        billing.park(pairs, error)
    except Exception as exc:  # noqa: BLE001
        return _keep(pairs, log, keep, f"it could not be set aside in the database ({exc})")
    log("error", "the record is kept in kondge.unprocessed_record (kondge accounting "
                 "parked) and answered")
    return "ok"


def _keep(pairs, log, keep, why: str) -> str:
    if keep is None:
        return "no-answer"
    try:
        keep(pairs)
    except SpoolError as exc:
        log("error", f"ACCOUNTING NOT ANSWERED: {why}, and the spool cannot keep it "
                     f"either: {exc}; the gateway will send it again")
        return "no-answer"
    log("info", f"accounting kept in the spool, answered: {why}")
    return "ok"
