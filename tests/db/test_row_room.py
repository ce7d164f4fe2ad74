"""The call tables keep room on their pages (sql/migrations/0018): a leg
stopped after many other calls started since its Start, and a hold made
live after many other holds were placed since stage 2, keep their page,
so that the update touches no index (a HOT update). With full pages the
legs and holds that came after them fill the page, and the new version
of the row moves to another."""

from kondge_billing.calls.service import Grant
from kondge_billing.operations import demo
from tests.db.test_call_path import account, acct, auth, login
from tests.support.cards import new_card

CONF = "h323-conf-id=0000A000 0F4411D6 AB5591F0 CBF3D765"
OTHERS = 120          # rows after it: several pages' worth


def block(db, sql, args) -> int:
    """The page number of the row the query names (its ctid's block)."""
    return db.run(lambda cur: (cur.execute(f"SELECT (ctid::text::point)[0]::int AS b {sql}",
                                           args), cur.fetchone())[1])["b"]


def test_a_leg_and_a_hold_keep_their_page_when_updated(db, billing, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    assert isinstance(auth(billing, login("1000000008", "1234", "447911123456", conf=CONF)),
                      Grant)
    hold_sql = ("FROM kondge.reservation WHERE call_id = %s", ("0000A000 0F4411D6 AB5591F0 "
                                                               "CBF3D765",))
    hold_page = block(db, *hold_sql)
    # other calls' holds placed since, each on a card of its own
    for n in range(OTHERS):
        conf = f"h323-conf-id={0xB000 + n:08X} 0F4411D6 AB5591F0 CBF3D765"
        card = new_card(db, pin_key)
        assert isinstance(auth(billing, login(card, "1234", "447911123456", conf=conf)), Grant)
    assert db.run(lambda cur: (cur.execute(
        "SELECT count(DISTINCT (ctid::text::point)[0]) AS n FROM kondge.reservation"),
        cur.fetchone())[1])["n"] > 2                         # the holds filled pages since
    assert account(billing, acct("Start", "originate", conf=CONF)).outcome == "recorded"
    assert block(db, *hold_sql) == hold_page                  # made live on its page

    leg_sql = ("FROM kondge.call_leg WHERE call_id = %s AND leg = 'originate'",
               ("0000A000 0F4411D6 AB5591F0 CBF3D765",))
    leg_page = block(db, *leg_sql)
    for n in range(OTHERS):
        conf = f"h323-conf-id={0xC000 + n:08X} 0F4411D6 AB5591F0 CBF3D765"
        assert account(billing, acct("Start", "answer", conf=conf,
                                     dest="18005550100")).outcome == "recorded"
    pages = db.run(lambda cur: (cur.execute(
        "SELECT count(DISTINCT (ctid::text::point)[0]) AS n FROM kondge.call_leg"),
        cur.fetchone())[1])["n"]
    assert pages > 2                                          # the legs filled pages since
    assert account(billing, acct("Stop", "originate", 30, conf=CONF)).outcome in (
        "recorded", "charged")
    assert block(db, *leg_sql) == leg_page                    # stopped on its page
