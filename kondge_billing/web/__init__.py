"""The card holders' web portal (docs/portal.md): a Flask application served
by waitress (__main__.py), one more part the supervisor runs.

A card holder logs in with card number and PIN (or a caller number bound
to the card and its PIN) and sees the card's balance (available and held),
validity, status and language, recent calls (paged, filtered by date) and
movements; downloads the statement PDF and the calls XLSX; refills from a
voucher; chooses the prompt language. Everything it
reads or changes goes through kondge_billing/store/portal.py, i.e. the database's
web_* functions, as the kondge_web role: it has no SQL of its own.

Security: the session is a token the database issued, in a cookie that is
HttpOnly, SameSite=Strict and Secure behind TLS; every form carries a CSRF
token (an HMAC of a random per-browser cookie, keyed by a secret the
process draws at start); every response carries a Content-Security-Policy
that allows nothing but this site's stylesheet (no script at all) and
forbids framing; Jinja2 escapes every value; pages are never cached.
"""

import hashlib
import hmac
import logging
import secrets
import tempfile
import time
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from flask import Flask, Response, abort, g, make_response, redirect, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import i18n, xlsx
from ..store import portal, statements
from ..store.db import Database
from ..errors import Unavailable
from ..rating.numbers import NumberFormat, normalise

SESSION_COOKIE = "kondge_session"
CSRF_COOKIE = "kondge_csrf"
LANGUAGE_COOKIE = "kondge_lang"
CALLS_PER_PAGE = 20
MOVEMENTS_PER_PAGE = 20
#: the most calls one XLSX download holds (the newest, within the dates)
XLSX_ROWS = 10000

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

log = logging.getLogger("kondge.web")


def create_app(db: Database, pin_key: bytes, proxies: int = 0) -> Flask:
    """The portal on `db` (a connection as kondge_web); `proxies`: how many
    reverse proxies stand in front of it, whose X-Forwarded-For and
    X-Forwarded-Proto are then believed (the client's address is what PIN
    guesses are counted against)."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=16 * 1024, TEMPLATES_AUTO_RELOAD=False)
    csrf_key = secrets.token_bytes(32)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(
        gettext=lambda message, **kw: _translate(message, **kw),
        ngettext=lambda singular, plural, n, **kw: _translate_n(singular, plural, n, **kw),
        newstyle=True)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    def run(work):
        return db.run(work)

    # --- every request ----------------------------------------------------------

    @app.before_request
    def before():
        g.started = time.monotonic()
        g.csrf_seed = request.cookies.get(CSRF_COOKIE) or ""
        g.new_csrf_seed = None
        if len(g.csrf_seed) != 43:
            g.new_csrf_seed = g.csrf_seed = secrets.token_urlsafe(32)
        g.csrf = hmac.new(csrf_key, g.csrf_seed.encode(), hashlib.sha256).hexdigest()
        g.token = request.cookies.get(SESSION_COOKIE) or ""
        g.lang = i18n.best([request.cookies.get(LANGUAGE_COOKIE)]
                           + [tag for tag, _q in request.accept_languages])
        if request.method == "POST":
            given = request.form.get("csrf", "")
            if g.new_csrf_seed or not hmac.compare_digest(given, g.csrf):
                return page("error.html", 400, message=_("This form has expired. Please try "
                                                         "again."))
        return None

    @app.after_request
    def after(response):
        secure = request.is_secure
        if g.get("new_csrf_seed"):
            response.set_cookie(CSRF_COOKIE, g.new_csrf_seed, httponly=True, samesite="Strict",
                                secure=secure, path="/")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        if secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        log.info("%s %s %s %.1f ms", request.method, request.path, response.status_code,
                 (time.monotonic() - g.get("started", time.monotonic())) * 1000)
        return response

    @app.errorhandler(Unavailable)
    def unavailable(_exc):
        return page("error.html", 503, message=_("The service is not available just now. "
                                                 "Please try again in a few minutes."))

    @app.errorhandler(portal.NotLoggedIn)
    def not_logged_in(_exc):
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.errorhandler(404)
    def not_found(_exc):
        return page("error.html", 404, message=_("There is no such page."))

    @app.errorhandler(413)
    def too_large(_exc):
        return page("error.html", 413, message=_("That is too much to send."))

    # --- pages ------------------------------------------------------------------

    @app.get("/")
    def home():
        return redirect("/account" if g.token else "/login")

    @app.get("/login")
    def login_form():
        return page("login.html")

    @app.post("/login")
    def login():
        by = "caller" if request.form.get("by") == "caller" else "card"
        pin = request.form.get("pin", "")
        raw = request.form.get("number", "")
        number = (normalise(raw[:40], NumberFormat()) or "") if by == "caller" else _digits(raw)
        if not (4 <= len(number) <= 20) or not pin or len(pin) > 32:
            return page("login.html", 200, failed="wrong-pin", by=by)
        if by == "caller":
            result = run(lambda cur: portal.login_caller(cur, pin_key, number, pin, client()))
        else:
            result = run(lambda cur: portal.login(cur, pin_key, number, pin, client()))
        if result.token is None:
            return page("login.html", 200, failed=result.refusal, until=result.until, by=by)
        response = redirect("/account")
        response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="Strict",
                            secure=request.is_secure, path="/")
        return response

    @app.post("/logout")
    def logout():
        if g.token:
            run(lambda cur: portal.logout(cur, g.token))
        response = redirect("/login?bye=1")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/account")
    def account():
        card = run(lambda cur: portal.card(cur, g.token))
        if not request.cookies.get(LANGUAGE_COOKIE) and card["language"] in i18n.LANGUAGES:
            g.lang = card["language"]
        recent, total = run(lambda cur: portal.calls(cur, g.token, limit=5))
        moves, _moves = run(lambda cur: portal.movements(cur, g.token, limit=5))
        return page("account.html", card=card, calls=recent, calls_total=total,
                    movements=moves, refilled=request.args.get("refilled"))

    @app.get("/calls")
    def calls():
        since, until, bad = date_range()
        number = page_number()
        card = run(lambda cur: portal.card(cur, g.token))
        rows, total = run(lambda cur: portal.calls(
            cur, g.token, since, until, CALLS_PER_PAGE, (number - 1) * CALLS_PER_PAGE))
        return page("calls.html", card=card, calls=rows, total=total, page_no=number,
                    pages=max(1, -(-total // CALLS_PER_PAGE)), bad_dates=bad,
                    start=request.args.get("from", ""), end=request.args.get("to", ""))

    @app.get("/movements")
    def movements():
        number = page_number()
        card = run(lambda cur: portal.card(cur, g.token))
        rows, total = run(lambda cur: portal.movements(
            cur, g.token, MOVEMENTS_PER_PAGE, (number - 1) * MOVEMENTS_PER_PAGE))
        return page("movements.html", card=card, movements=rows, total=total, page_no=number,
                    pages=max(1, -(-total // MOVEMENTS_PER_PAGE)))

    @app.get("/refill")
    def refill_form():
        card = run(lambda cur: portal.card(cur, g.token))
        return page("refill.html", card=card)

    @app.post("/refill")
    def refill():
        voucher = _digits(request.form.get("voucher", ""))
        pin = request.form.get("pin", "")
        card = run(lambda cur: portal.card(cur, g.token))
        if not (4 <= len(voucher) <= 20) or not pin or len(pin) > 32:
            return page("refill.html", card=card, outcome="no-voucher")
        out = run(lambda cur: portal.refill(cur, pin_key, g.token, client(), voucher, pin))
        if out["outcome"] == "refilled":
            return redirect(f"/account?refilled={out['amount']}")
        return page("refill.html", card=card, outcome=out["outcome"], until=out["refused_until"])

    @app.post("/language")
    def language():
        chosen = request.form.get("language", "")
        if chosen not in i18n.LANGUAGES:
            abort(404)
        target = "/login"
        if request.form.get("card") and g.token:
            run(lambda cur: portal.set_language(cur, g.token, chosen))
            target = "/account"
        response = redirect(target)
        response.set_cookie(LANGUAGE_COOKIE, chosen, httponly=True, samesite="Strict",
                            secure=request.is_secure, path="/", max_age=365 * 86400)
        return response

    @app.get("/statement.pdf")
    def statement_pdf():
        since, until, _bad = date_range(default_days=31)
        until = until or datetime.now(timezone.utc)
        since = since or until - timedelta(days=31)
        st = run(lambda cur: portal.statement(cur, g.token, since, until))
        with tempfile.TemporaryFile() as out:
            statements.render_pdf(st, out, st["card"]["language"])
            out.seek(0)
            body = out.read()
        return download(body, "application/pdf", f"statement-{st['card']['number']}.pdf")

    @app.get("/calls.xlsx")
    def calls_xlsx():
        since, until, _bad = date_range()
        card = run(lambda cur: portal.card(cur, g.token))
        rows, _total = run(lambda cur: portal.calls(cur, g.token, since, until, XLSX_ROWS, 0))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "calls.xlsx"
            columns = [_("Time (UTC)"), _("Destination"), _("Name"), _("Seconds"), _("Charge"),
                       _("Currency")]
            xlsx.write_table(path, "calls", columns,
                             ((r["started_at"], r["destination"] or "", r["destination_name"] or "",
                               r["seconds"], r["charge"], r["currency"] or card["currency"])
                              for r in rows))
            body = path.read_bytes()
        return download(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        f"calls-{card['number']}.xlsx")

    # --- helpers ----------------------------------------------------------------

    def client() -> str:
        return request.remote_addr or "unknown"

    def page_number() -> int:
        try:
            return max(1, min(int(request.args.get("page", "1")), 100000))
        except ValueError:
            return 1

    def date_range(default_days=None):
        """[from, to) of the query's dates (days, UTC; `to` included); bad: a date
        that is no date, ignored."""
        bounds, bad = [], False
        for name, extra in (("from", 0), ("to", 1)):
            raw = request.args.get(name, "").strip()
            value = None
            if raw:
                try:
                    value = datetime.combine(date.fromisoformat(raw), dtime(),
                                             timezone.utc) + timedelta(days=extra)
                except ValueError:
                    bad = True
            bounds.append(value)
        return bounds[0], bounds[1], bad

    def download(body: bytes, kind: str, name: str) -> Response:
        response = make_response(body)
        response.headers["Content-Type"] = kind
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    app.jinja_env.filters["money"] = lambda amount: money(amount)
    app.jinja_env.filters["when"] = lambda value: when(value)
    app.jinja_env.filters["day"] = lambda value: day(value)
    app.jinja_env.globals.update(languages=i18n.LANGUAGES, language_names=i18n.NAMES,
                                 kind_name=lambda kind: statements.kind_name(_, kind))
    return app


# --- language and formats (the request's language, g.lang) ------------------------

def _translate(message: str, **values) -> str:
    text = i18n.translations(g.get("lang", "en")).gettext(message)
    return text % values if values else text


def _translate_n(singular: str, plural: str, n: int, **values) -> str:
    text = i18n.translations(g.get("lang", "en")).ngettext(singular, plural, n)
    return text % dict(values, num=n)


def _(message: str, **values) -> str:
    return _translate(message, **values)


def _locale() -> str:
    return {"zh": "zh_Hans_CN"}.get(g.get("lang", "en"), g.get("lang", "en"))


def money(amount) -> str:
    return "" if amount is None else format_decimal(amount, format="#,##0.00##",
                                                    locale=_locale())


def when(value) -> str:
    if value is None:
        return ""
    return format_datetime(value, "yyyy-MM-dd HH:mm", tzinfo=timezone.utc, locale=_locale())


def day(value) -> str:
    if value is None:
        return ""
    return format_date(value.astimezone(timezone.utc).date(), "medium", locale=_locale())


def _digits(raw: str) -> str:
    """A number as typed (spaces and dashes allowed), or "" if it is not one."""
    number = raw.replace(" ", "").replace("-", "")
    return number if number.isascii() and number.isdigit() else ""


def page(template: str, status: int = 200, **context):
    body = render_template(template, lang=g.get("lang", "en"), csrf=g.get("csrf", ""),
                           logged_in=bool(g.get("token")), **context)
    return make_response(body, status)

