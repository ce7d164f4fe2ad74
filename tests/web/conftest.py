"""The web portal in a real browser: Debian's headless Chromium driven by
selenium through Debian's chromedriver (nothing downloaded), against the
suite's real service (tests/conftest.py: `service`, with the portal on a
port of its own). Each test saves a screenshot of every page it looks at
under var/web-screens/, for review."""

import re
import shutil
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

HOME = Path(__file__).resolve().parents[2]
SCREENS = HOME / "var" / "web-screens"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def chromium():
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--lang=en-US", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def portal_url(service):
    return f"http://127.0.0.1:{service.settings.web_port}"


def _gone(element) -> bool:
    """The page that held `element` is gone. Chromium reports an element of a
    page it left as stale, or as a node that "does not belong to the
    document" (which selenium's staleness_of does not take for gone)."""
    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


class Browser:
    """The browser on the portal, for one test: a fresh session, and a
    screenshot of each page looked at (var/web-screens/<test>-NN-<what>.png)."""

    def __init__(self, driver, base, test_name):
        self.driver, self.base, self.test = driver, base, test_name
        self.shots = 0
        driver.set_window_size(1280, 900)
        driver.get(base + "/login")
        driver.delete_all_cookies()

    def open(self, path):
        self.driver.get(self.base + path)
        self._loaded()
        return self

    def find(self, css):
        return WebDriverWait(self.driver, 15).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    def text(self, css) -> str:
        return self.find(css).text

    def all_text(self, css) -> list[str]:
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def fill(self, **fields):
        for name, value in fields.items():
            self._on_fresh(f"#{name}", lambda box, value=value: (box.clear(),
                                                                  box.send_keys(value)))

    def _on_fresh(self, css, act, tries=5):
        """act(element), found again if the page replaced it meanwhile (Chromium
        says so as "does not belong to the document", or a stale element)."""
        for attempt in range(tries):
            try:
                return act(self.find(css))
            except WebDriverException:
                if attempt == tries - 1:
                    raise
                self._loaded()

    def _loaded(self):
        """The page in the window has loaded."""
        WebDriverWait(self.driver, 15).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def click(self, css):
        """Click a submit button and wait for the next page, loaded."""
        old = self.find("html")
        self._on_fresh(css, lambda button: button.click())
        WebDriverWait(self.driver, 15).until(lambda _d: _gone(old))
        self._loaded()

    def login(self, number, pin):
        self.open("/login")
        self.fill(number=number, pin=pin)
        self.click("#login")

    def shot(self, what):
        SCREENS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.test}-{self.shots:02d}-{what}")
        self.driver.save_screenshot(str(SCREENS / f"{name}.png"))

    @property
    def path(self) -> str:
        return self.driver.current_url[len(self.base):]

    def main_html(self) -> str:
        return self.find("main").get_attribute("innerHTML")

    def session_fetch(self, path) -> tuple[int, dict, bytes]:
        """GET `path` outside the browser with the browser's cookies (downloads)."""
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in self.driver.get_cookies())
        req = urllib.request.Request(self.base + path, headers={"Cookie": cookies})
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()


@pytest.fixture
def browser(chromium, portal_url, request):
    return Browser(chromium, portal_url, request.node.name)


def plain_client():
    """An HTTP client with cookies and no redirects followed (what a forged
    form post or a script would be)."""
    jar = CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    return opener, jar
