"""The portal's application without a server or a database (a stand-in for
the web_* functions): behind a TLS reverse proxy (KONDGE_WEB_PROXIES) its
cookies are Secure and it asks for HSTS; without one, forwarded headers are
not believed; the address PIN guesses are counted against is the client's."""

from kondge_billing.web import create_app


class StandInDatabase:
    """Answers web_login with a refusal and records what it was asked."""

    def __init__(self):
        self.calls = []

    def run(self, work):
        return work(self)

    def execute(self, sql, params=()):
        self.calls.append((sql, params))

    def fetchone(self):
        return {"token": None, "refusal": "wrong-pin", "refused_until": None}


def csrf_of(response):
    return response.get_data(as_text=True).split('name="csrf" value="')[1].split('"')[0]


def test_behind_a_tls_proxy_cookies_are_secure_and_the_client_is_the_forwarded_one():
    db = StandInDatabase()
    client = create_app(db, b"k" * 64, proxies=1).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    page = client.get("/login", headers=forwarded)
    cookie = page.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    answer = client.post("/login", headers=forwarded,
                         data={"csrf": csrf_of(page), "number": "1000000008", "pin": "1"})
    assert answer.status_code == 200 and "The card number or the PIN is wrong." in \
        answer.get_data(as_text=True)
    (sql, params), = db.calls
    assert "web_login" in sql and params[2] == "198.51.100.7" and "1" not in params[1:2]


def test_without_a_proxy_forwarded_headers_are_not_believed():
    db = StandInDatabase()
    client = create_app(db, b"k" * 64, proxies=0).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    page = client.get("/login", headers=forwarded)
    assert "Secure" not in page.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in page.headers
    client.post("/login", headers=forwarded,
                data={"csrf": csrf_of(page), "number": "1000000008", "pin": "1"})
    (_sql, params), = db.calls
    assert params[2] == "127.0.0.1"


def test_a_post_without_the_token_never_reaches_the_database():
    db = StandInDatabase()
    client = create_app(db, b"k" * 64).test_client()
    client.get("/login")
    answer = client.post("/login", data={"number": "1000000008", "pin": "1234"})
    assert answer.status_code == 400 and db.calls == []


def test_a_number_that_is_no_number_never_reaches_the_database():
    db = StandInDatabase()
    client = create_app(db, b"k" * 64).test_client()
    page = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf_of(page), "number": "1' OR '1'='1",
                                         "pin": "1234"})
    assert "The card number or the PIN is wrong." in answer.get_data(as_text=True)
    assert db.calls == []


def test_a_phone_number_login_asks_by_the_international_number():
    db = StandInDatabase()
    client = create_app(db, b"k" * 64).test_client()
    page = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf_of(page), "by": "caller",
                                         "number": "+44 7700 900-123", "pin": "1234"})
    assert "The phone number or the PIN is wrong." in answer.get_data(as_text=True)
    assert 'id="by-caller" checked' in answer.get_data(as_text=True)
    [(sql, params)] = db.calls
    assert "web_login_caller" in sql and params[0] == "447700900123" and params[1] == "1234"
    # the card-number function is not asked, nor is anything for a number that is none
    for bad in ("1' OR '1'='1", "+", "12"):
        client.post("/login", data={"csrf": csrf_of(page), "by": "caller", "number": bad,
                                    "pin": "1234"})
    assert len(db.calls) == 1
