"""A card holder on the web portal, in headless Chromium: log in, see a call
made over RADIUS in the same test with its charge, refill from a voucher
and see the new balance, a wrong PIN, the lockout shared with the IVR, log
out; the pages in Chinese on a phone's screen and the statement PDF in
Chinese; what must not happen (a form without its CSRF token, another
card's data, a page without its security headers)."""

import io
import os
import time
import urllib.error
import urllib.parse
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from kondge_billing.store import categories, issuance
from kondge_billing.store.pins import load_key
from kondge_billing.progress import Progress
from kondge_billing.operations.web_process import NICE
from tests.e2e.conftest import balance
from tests.e2e.test_radius import conf_id, leg
from tests.support.cards import new_card
from tests.web.conftest import plain_client


def access(client, number, pin, called="18005550100", conf=None):
    """A stage 1 or 2 from a caller number of this module's own: the suite's
    other tests count wrong PINs against theirs."""
    return client.access([("User-Name", number), ("User-Password", pin),
                          ("Calling-Station-Id", "15557770000"),
                          ("Called-Station-Id", called),
                          ("h323-conf-id", conf or conf_id())])


@pytest.fixture
def key(service):
    return load_key(service.settings.pin_key_file)


@pytest.fixture
def radius(service):
    client = service.client("testing123")
    yield client
    client.close()


def voucher(service, key, value="5.00"):
    """A fresh recharge voucher (number, PIN) of `value` USD."""
    name = f"v-{uuid.uuid4().hex[:10]}"

    def make(cur):
        categories.add(cur, name, face_value=value, currency="USD", kind="voucher")
        return issuance.issue(cur, key, name, 1, name, "tests", progress=lambda label, total:
                              Progress(label, total, enabled=False))
    return service.db.transaction(make)["pieces"][0]


def test_card_holder_sees_a_radius_call_refills_and_logs_out(service, browser, key, radius):
    number = new_card(service.db, key)
    # a call over RADIUS: login, destination, both legs; 125 s to a UK mobile = 0.3150
    conf = conf_id()
    assert access(radius, number, "1234", conf=conf).accepted
    assert access(radius, number, "1234", "447911123456", conf=conf).accepted
    assert leg(radius, "Start", "originate", conf, number=number) is not None
    assert leg(radius, "Stop", "originate", conf, seconds=125, number=number) is not None
    assert balance(service, number) == Decimal("9.6850")

    browser.open("/")
    assert browser.path == "/login"
    browser.shot("login")
    browser.login(number, "1234")
    assert browser.path == "/account"
    assert browser.text("h1") == f"Card {number}"
    assert browser.text("#balance") == "9.685 USD"
    assert browser.text("#available") == "9.685 USD"
    assert browser.text("#held") == "0.00 USD"
    assert browser.text("#status") == "active"
    assert browser.text("#valid") == "no end"
    rows = browser.all_text("table.calls tr.call")
    assert len(rows) == 1 and "447911123456" in rows[0] and "125" in rows[0] \
        and "0.315" in rows[0]
    browser.shot("account")

    browser.open("/calls")
    assert browser.text("#count") == "1 call"
    browser.shot("calls")
    # a date filter that leaves the call out
    browser.fill(**{"from": "01012001", "to": "01022001"})
    browser.open("/calls?from=2001-01-01&to=2001-02-01")
    assert browser.text("#count") == "0 calls"
    assert browser.all_text("table.calls tr.call") == []

    status, headers, body = browser.session_fetch("/statement.pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert number in text and "447911123456" in text and "0.3150" in text
    status, headers, body = browser.session_fetch("/calls.xlsx")
    sheet = load_workbook(io.BytesIO(body)).active
    assert [c.value for c in sheet[2]][1:5] == ["447911123456", sheet["C2"].value, 125,
                                                Decimal("0.315")] or sheet["E2"].value == 0.315

    # a refill: a wrong voucher PIN first, then the right one
    piece = voucher(service, key)
    browser.open("/refill")
    browser.fill(voucher=piece.number, **{"voucher-pin": "0000" if piece.pin != "0000" else "1"})
    browser.click("#refill")
    assert browser.text("#problem") == "The voucher number or its PIN is wrong."
    browser.shot("refill-wrong-pin")
    browser.fill(voucher=piece.number, **{"voucher-pin": piece.pin})
    browser.click("#refill")
    assert browser.path.startswith("/account")
    assert browser.text("#refilled") == "Refilled with 5.00 USD."
    assert browser.text("#balance") == "14.685 USD"
    assert balance(service, number) == Decimal("14.6850")
    moves = browser.all_text("table.movements tr.movement")
    assert "refill" in moves[0] and "5.00" in moves[0]
    browser.shot("refilled")

    browser.click("#logout")
    assert browser.path.startswith("/login")
    assert browser.text("#note") == "You have logged out."
    browser.shot("logged-out")
    browser.open("/account")
    assert browser.path == "/login"            # the session is over
    # the old cookie gets no statement: sent to the login page instead
    _status, headers, body = browser.session_fetch("/statement.pdf?from=2000-01-01")
    assert headers["Content-Type"].startswith("text/html") and not body.startswith(b"%PDF")


def test_wrong_pin_and_unknown_card_look_alike_and_the_ivr_shares_the_lockout(
        service, browser, key, radius):
    number = new_card(service.db, key)
    browser.login(number, "9999")
    assert browser.path == "/login"
    wrong = browser.main_html()
    assert browser.text("#problem") == "The card number or the PIN is wrong."
    browser.shot("wrong-pin")
    browser.login("4000000000006", "9999")         # no such card
    assert browser.main_html() == wrong
    browser.shot("unknown-card")
    # three more wrong PINs through the gateway, then one on the web: five, locked
    for _ in range(3):
        reply = access(radius, number, "9999")
        assert reply.h323("h323-return-code") == "2"
    browser.login(number, "9999")
    assert browser.text("#problem") == "The card number or the PIN is wrong."
    # now even the right PIN is refused, on the web and through the gateway
    browser.login(number, "1234")
    assert browser.path == "/login"
    assert browser.text("#problem").startswith("Too many wrong PINs. Please try again after")
    browser.shot("locked")
    assert access(radius, number, "1234").h323("h323-return-code") == "10"
    assert service.kondge("cards", "unlock", number).returncode == 0
    browser.login(number, "1234")
    assert browser.path == "/account"


def test_pages_in_chinese_on_a_phone_and_the_statement_in_chinese(service, browser, key):
    number = new_card(service.db, key)
    browser.driver.set_window_size(390, 844)
    browser.open("/login")
    browser.find("#ui-language").send_keys("中文")
    browser.click("#ui-language-go")
    assert browser.find("html").get_attribute("lang") == "zh"
    assert browser.text("#login") == "登录"
    browser.shot("login-zh-phone")
    browser.login(number, "1234")
    assert browser.text("h1") == f"卡 {number}"
    # nothing wider than the phone's screen
    assert browser.driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    browser.shot("account-zh-phone")
    # the card's language (the prompts' and the statement's) becomes Chinese
    browser.find("#card-language").send_keys("中文")
    browser.click("#set-language")
    assert browser.text("#language") == "中文"
    assert service.db.run(lambda cur: (cur.execute(
        "SELECT language FROM kondge.card WHERE number = %s", (number,)), cur.fetchone())[1]
    )["language"] == "zh"
    _status, _headers, body = browser.session_fetch("/statement.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert "对账单" in text and "期初余额" in text and "期末余额" in text and number in text
    for language, word in (("es", "Saldo"), ("fr", "Solde"), ("en", "Balance")):
        browser.find("#ui-language").send_keys({"es": "Español", "fr": "Français",
                                                "en": "English"}[language])
        browser.click("#ui-language-go")
        browser.open("/account")
        assert browser.find("html").get_attribute("lang") == language
        assert word in browser.text("dl.summary")
        browser.shot(f"account-{language}-phone")


def test_a_form_without_its_csrf_token_is_refused(service, portal_url, key):
    number = new_card(service.db, key)
    opener, jar = plain_client()
    with opener.open(portal_url + "/login", timeout=10) as first:
        page = first.read().decode()
        headers = first.headers
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    # every page says what it may load and that it is never framed or cached
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]

    def post(path, fields):
        data = urllib.parse.urlencode(fields).encode()
        try:
            with opener.open(portal_url + path, data=data, timeout=10) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    # no token, or a token that is not this browser's: refused, nobody logged in
    for fields in ({"number": number, "pin": "1234"},
                   {"number": number, "pin": "1234", "csrf": "0" * 64}):
        status, _h, body = post("/login", fields)
        assert status == 400 and "This form has expired" in body
        assert not any(c.name == "kondge_session" for c in jar)
    status, login_headers, _body = post("/login", {"number": number, "pin": "1234",
                                                   "csrf": csrf})
    assert status == 302 and login_headers["Location"].endswith("/account")
    session = [c for c in jar if c.name == "kondge_session"]
    assert len(session) == 1 and session[0].has_nonstandard_attr("HttpOnly")
    assert "SameSite=Strict" in login_headers["Set-Cookie"]
    assert "Secure" not in login_headers["Set-Cookie"]        # plain HTTP on loopback
    # logged in, a refill without the token moves nothing
    piece = voucher(service, key)
    status, _h, _b = post("/refill", {"voucher": piece.number, "pin": piece.pin})
    assert status == 400
    assert balance(service, number) == Decimal("10.00")
    # behind a TLS proxy (KONDGE_WEB_PROXIES) the cookies are Secure: see
    # tests/unit/test_web.py; a logout without the token ends nothing
    status, _h, _b = post("/logout", {})
    assert status == 400
    with opener.open(portal_url + "/account", timeout=10) as still:
        assert still.status == 200 and number in still.read().decode()


def test_another_cards_data_is_never_shown(service, browser, key, radius):
    mine, theirs = new_card(service.db, key), new_card(service.db, key, balance="7.00")
    conf = conf_id()
    assert access(radius, theirs, "1234", "447911123456", conf=conf).accepted
    assert leg(radius, "Stop", "originate", conf, seconds=61, number=theirs,
               dest="447911999888") is not None
    browser.login(mine, "1234")
    pages = []
    for path in ("/account", "/calls", "/movements", "/refill",
                 "/calls?from=2000-01-01&to=2100-01-01"):
        browser.open(path)
        pages.append(browser.driver.page_source)
    assert all(mine in page or path != "/account" for page in pages)
    assert not any(theirs in page or "447911999888" in page or "7.00" in page
                   for page in pages)
    _s, _h, body = browser.session_fetch("/statement.pdf?from=2000-01-01&to=2100-01-01")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages)
    assert mine in text and theirs not in text and "447911999888" not in text
    _s, _h, body = browser.session_fetch("/calls.xlsx?from=2000-01-01&to=2100-01-01")
    cells = [c.value for row in load_workbook(io.BytesIO(body)).active.iter_rows() for c in row]
    assert "447911999888" not in cells


def test_values_are_escaped(service, browser, key):
    """A value the card holder or a gateway chose is shown as text, never run:
    a voucher number with markup is refused as no number, and a destination
    as dialled with markup is escaped."""
    number = new_card(service.db, key)
    browser.login(number, "1234")
    browser.open("/refill")
    browser.fill(voucher="<script>alert(1)</script>", **{"voucher-pin": "1"})
    browser.click("#refill")
    assert "<script>alert(1)</script>" not in browser.driver.page_source
    assert browser.text("#problem") == "The voucher number or its PIN is wrong."


def login_by_caller(browser, caller, pin):
    browser.open("/login")
    browser.find("#by-caller").click()
    browser.fill(number=caller, pin=pin)
    browser.click("#login")


def card_row(service, number):
    return service.db.run(lambda cur: (cur.execute(
        "SELECT pin_failures, pin_locked_until FROM kondge.card WHERE number = %s",
        (number,)), cur.fetchone())[1])


def forget_this_client(service):
    """The portal counts every wrong PIN from this browser's address (10 an
    hour): start this test, and leave the next, from none."""
    service.db.run(lambda cur: cur.execute(
        "DELETE FROM kondge.pin_guard WHERE scope = 'web' AND key = '127.0.0.1'"))


def test_caller_number_login_and_its_wrong_pins_count_toward_the_same_lock(
        service, browser, key, radius):
    forget_this_client(service)
    number = new_card(service.db, key)
    tail = f"{uuid.uuid4().int % 10**6:06d}"
    caller, unbound = f"4477009{tail}", f"4477008{tail}"
    assert service.kondge("callers", "bind", "--card", number, f"+{caller}").returncode == 0

    # the right PIN, the number as people write it
    login_by_caller(browser, f"+44 7700 9{tail[:2]} {tail[2:]}", "1234")
    assert browser.path == "/account"
    assert browser.text("h1") == f"Card {number}"
    browser.shot("caller-login")
    browser.click("#logout")

    # a wrong PIN, and a number bound to no card: one answer, the choice kept
    login_by_caller(browser, caller, "9999")
    assert browser.path == "/login"
    assert browser.text("#problem") == "The phone number or the PIN is wrong."
    assert browser.find("#by-caller").is_selected()
    wrong = browser.main_html()
    browser.shot("caller-wrong-pin")
    login_by_caller(browser, unbound, "9999")
    assert browser.main_html() == wrong
    browser.shot("caller-unbound")
    assert card_row(service, number)["pin_failures"] == 1

    # one by card number on the web, one through a gateway from that caller
    # number, two more by caller number: five wrong PINs in a row, the card locked
    browser.login(number, "9999")
    assert browser.text("#problem") == "The card number or the PIN is wrong."
    reply = radius.access([("User-Name", number), ("User-Password", "9999"),
                           ("Calling-Station-Id", caller),
                           ("Called-Station-Id", "18005550100"), ("h323-conf-id", conf_id())])
    assert reply.h323("h323-return-code") == "2"
    assert card_row(service, number)["pin_failures"] == 3
    for _ in range(2):
        login_by_caller(browser, caller, "9999")
        assert browser.text("#problem") == "The phone number or the PIN is wrong."
    assert card_row(service, number)["pin_locked_until"] is not None

    # the right PIN now fails every way: by caller number, by card number, the IVR
    login_by_caller(browser, caller, "1234")
    assert browser.path == "/login"
    assert browser.text("#problem").startswith("Too many wrong PINs. Please try again after")
    browser.shot("caller-locked")
    browser.login(number, "1234")
    assert browser.text("#problem").startswith("Too many wrong PINs")
    assert access(radius, number, "1234").h323("h323-return-code") == "10"
    # the operator lifts the card's lock: the caller number logs in again
    assert service.kondge("cards", "unlock", number).returncode == 0
    login_by_caller(browser, caller, "1234")
    assert browser.path == "/account" and browser.text("h1") == f"Card {number}"
    forget_this_client(service)


def backend_nice(service, role) -> dict[int, int]:
    """The nice value of each PostgreSQL backend of `role` on the service's cluster."""
    data = str(service.settings.pg_data.resolve())
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read(64)
            if title.startswith(f"postgres: {role} ".encode()) and \
                    os.readlink(f"/proc/{entry}/cwd") == data:
                found[int(entry)] = os.getpriority(os.PRIO_PROCESS, int(entry))
        except OSError:
            continue
    return found


def test_the_portal_s_database_backends_yield_the_cpu_as_the_portal_does(service, browser, key,
                                                                         radius):
    number = new_card(service.db, key)
    browser.login(number, "1234")
    assert access(radius, number, "1234").accepted
    ours = os.getpriority(os.PRIO_PROCESS, 0)     # the service's processes inherit it
    lowered = max(NICE, ours)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        portal_backends = backend_nice(service, "kondge_web")
        if portal_backends and set(portal_backends.values()) == {lowered}:
            break
        time.sleep(0.2)
    assert portal_backends and set(portal_backends.values()) == {lowered}, portal_backends
    # the call path's are left as they are
    radius_backends = backend_nice(service, "kondge_radius")
    assert radius_backends and set(radius_backends.values()) == {ours}
    # the portal itself, and its session's scheduling group where the kernel has them
    pid = int((service.settings.web_run_dir / "web.pid").read_text())
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(ours + NICE, 19)     # os.nice adds
    if os.path.exists(f"/proc/{pid}/autogroup"):
        with open(f"/proc/{pid}/autogroup") as f:
            assert f.read().split()[-1] == str(NICE)
