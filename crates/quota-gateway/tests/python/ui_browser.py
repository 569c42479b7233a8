"""The operator's page (/admin/ui/) in a real headless Chromium, as an
operator uses it (crates/quota-gateway/tests/ui_browser.rs runs it against a
gateway with some refused traffic):

1. a wrong token at the sign-in form shows #error (its 401 is the one
   console error expected); the right one signs in;
2. the Now page shows its chart (svg#chart-now), the store's health, and
   the busy account among the most refused; its script refreshes the chart;
3. the accounts page, searched for the busy account, lists it; its link
   opens the account's page;
4. the account's page shows its refusals (svg#chart-refusals) and its recent
   requests, 429s among them;
5. the Revoke form of one key revokes it; the next /v1 request with that
   key is a 401 (checked here with urllib, and again by the Rust test);
6. the browser's console has no error (no SEVERE entry).

Usage: ui_browser.py BASE_URL ADMIN_TOKEN BUSY_ACCOUNT KEY_ID API_KEY
(KEY_ID: the id of a key of BUSY_ACCOUNT to revoke, API_KEY: that key).
With QUOTA_UI_SCREENSHOTS=DIR, saves now.png, accounts.png and account.png
there. Chromium and chromedriver are Debian's (scripts/ensure-chromium.sh):
selenium is given /usr/bin/chromedriver, so selenium-manager never runs
(nor downloads anything). Prints one "ok: ..." line per step; exits 1 with
the reason on the first failure.
"""

import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import struct
import zlib
from collections import Counter

os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15  # seconds, for any element to appear


# Screenshots larger than this are redrawn with 256 colours (the page's own
# colours are few; only the shades of anti-aliased text are merged), so that
# the ones committed under docs/ui stay small.
PNG_LIMIT = 100_000


def _png_chunks(data):
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        yield data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _png_rows(width, height, bpp, raw):
    """The rows of an 8-bit PNG image, its filters undone."""
    stride = width * bpp
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + (left + prev[x]) // 2) & 255
        elif kind == 4:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                corner = prev[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + _paeth(left, prev[x], corner)) & 255
        yield bytes(line)
        prev = line


def shrink_png(path):
    """Rewrites the RGB(A) PNG at path with a palette of its 256 most used
    colours (each other colour drawn as its nearest) if it is over
    PNG_LIMIT bytes."""
    data = open(path, "rb").read()
    if len(data) <= PNG_LIMIT:
        return
    chunks = list(_png_chunks(data))
    width, height, depth, kind = struct.unpack(">IIBB", chunks[0][1][:10])
    if depth != 8 or kind not in (2, 6):
        return
    bpp = 3 if kind == 2 else 4
    raw = zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT"))
    rows = [[r[x:x + 3] for x in range(0, len(r), bpp)]
            for r in _png_rows(width, height, bpp, raw)]
    counts = Counter(px for row in rows for px in row)
    palette = [c for c, _ in counts.most_common(256)]
    index = {c: i for i, c in enumerate(palette)}
    for c in counts:
        if c not in index:
            index[c] = min(range(len(palette)), key=lambda i: sum(
                (a - b) ** 2 for a, b in zip(c, palette[i])))
    body = b"".join(b"\0" + bytes(index[px] for px in row) for row in rows)

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))

    out = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
           + chunk(b"PLTE", b"".join(palette))
           + chunk(b"IDAT", zlib.compress(body, 9))
           + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(out)


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


def start_browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


class Operator:
    def __init__(self, driver, base, shots):
        self.d = driver
        self.base = base.rstrip("/")
        self.shots = shots
        self.console = []

    def wait(self, css):
        try:
            return WebDriverWait(self.d, WAIT).until(
                EC.presence_of_element_located((By.CSS_SELECTOR, css))
            )
        except TimeoutException:
            raise Failed(f"no {css} on {self.d.current_url} within {WAIT} s:\n"
                         f"{self.d.page_source[:3000]}")

    def find(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def open(self, path):
        self.d.get(self.base + path)

    def submit(self, form):
        """Clicks the form's submit button and waits for the next page."""
        old = self.d.find_element(By.TAG_NAME, "html")
        button = form.find_element(By.CSS_SELECTOR, "button")
        button.click()
        try:
            WebDriverWait(self.d, WAIT).until(EC.staleness_of(old))
        except TimeoutException:
            raise Failed(f"submitting a form on {self.d.current_url} loaded no page")

    def screenshot(self, name):
        if not self.shots:
            return
        # The whole page (up to 2,400 px high), at the window's width: the
        # window's height is the page's plus what is not viewport.
        height, extra = self.d.execute_script(
            "return [Math.max(document.body.scrollHeight,"
            " document.documentElement.scrollHeight),"
            " window.outerHeight - window.innerHeight]")
        self.d.set_window_size(1280, max(900, min(int(height) + int(extra), 2400)))
        path = os.path.join(self.shots, f"{name}.png")
        self.d.save_screenshot(path)
        self.d.set_window_size(1280, 900)
        shrink_png(path)
        print(f"ok: screenshot {path} ({os.path.getsize(path)} bytes)", flush=True)

    def collect_console(self):
        self.console.extend(self.d.get_log("browser"))


def sign_in(op, token):
    op.open("/admin/ui/")
    form = op.wait("form#signin")
    check("/admin/ui/login" in op.d.current_url,
          "a page asked for without a session leads to the sign-in form")
    field = form.find_element(By.CSS_SELECTOR, "input[name=token]")
    field.clear()
    field.send_keys("not-the-admin-token")
    op.submit(form)
    error = op.wait("#error")
    check(error.text.strip() != "", f"a wrong token shows #error ({error.text.strip()!r})")
    check(not op.find("form#logout"), "a wrong token does not sign in")
    # The refused sign-in's own answer (a 401) is the one console error
    # expected: Chromium reports every document answered 4xx.
    for entry in op.d.get_log("browser"):
        message = entry.get("message", "")
        if (entry.get("level") == "SEVERE" and "/admin/ui/login" in message
                and "401" in message):
            print(f"expected console entry: {message}", flush=True)
        else:
            op.console.append(entry)
    form = op.wait("form#signin")
    field = form.find_element(By.CSS_SELECTOR, "input[name=token]")
    field.clear()
    field.send_keys(token)
    op.submit(form)
    op.wait("form#logout")
    check(op.find("nav a#nav-now") and op.find("nav a#nav-accounts"),
          "signed in: the navigation and the sign-out form are there")


def now_page(op, busy):
    op.d.find_element(By.CSS_SELECTOR, "a#nav-now").click()
    chart = op.wait("svg#chart-now")
    title = chart.find_elements(By.TAG_NAME, "title")
    check(title and title[0].get_attribute("textContent").strip(),
          "the Now page has its chart, titled")
    health = op.wait("#store-health").text.lower()
    check(any(w in health for w in ("ok", "degraded", "down")),
          f"the Now page shows the store's health ({health.strip()!r})")
    check(op.wait("#policy").text.strip() != "", "the Now page shows the policy in force")
    top = op.find(f'#top-refused tr[data-account="{busy}"] a')
    check(top, f"the Now page lists {busy} among the most refused accounts")
    op.screenshot("now")
    # The page's script fetches the chart again every 5 s (under the page's
    # Content-Security-Policy): the chart element is replaced.
    chart = op.wait("svg#chart-now")
    try:
        WebDriverWait(op.d, 12).until(EC.staleness_of(chart))
    except TimeoutException:
        raise Failed("the live refresh did not replace svg#chart-now within 12 s")
    check(op.wait("svg#chart-now"), "the live refresh replaced the chart")


def find_account(op, busy):
    op.d.find_element(By.CSS_SELECTOR, "a#nav-accounts").click()
    op.wait("table#accounts")
    op.screenshot("accounts")
    form = op.wait("form#search")
    q = form.find_element(By.CSS_SELECTOR, "input[name=q]")
    q.clear()
    q.send_keys(busy[: max(4, len(busy) - 2)])
    op.submit(form)
    op.wait("table#accounts")
    rows = op.find(f'table#accounts tr[data-account="{busy}"]')
    check(len(rows) == 1, f"searching the accounts finds {busy}")
    others = [r.get_attribute("data-account")
              for r in op.find("table#accounts tr[data-account]")]
    check(all(busy[: max(4, len(busy) - 2)] in o for o in others),
          f"the search lists only matching accounts ({others})")
    rows[0].find_element(By.CSS_SELECTOR, "a.account").click()
    h1 = op.wait("h1")
    check(busy in h1.text, f"the account's page opens ({h1.text.strip()!r})")


def account_page(op, busy):
    op.wait("svg#chart-refusals")
    check(True, "the account's page charts its refusals")
    limits = op.find("#limits .limit")
    check(len(limits) > 0, f"the account's page shows {len(limits)} limit(s) with bars")
    statuses = [td.text.strip() for td in op.find("table#recent tr td.status")]
    check("429" in statuses, f"its recent requests show 429s ({statuses[:12]})")
    op.screenshot("account")


def revoke(op, busy, key_id, api_key):
    row = op.wait(f'table#keys tr[data-key="{key_id}"]')
    form = row.find_element(By.CSS_SELECTOR, "form.revoke")
    op.submit(form)
    flash = op.wait("#flash")
    check(flash.text.strip() != "", f"revoking shows a message ({flash.text.strip()!r})")
    check(not op.find(f'table#keys tr[data-key="{key_id}"]'),
          f"the key {key_id} is gone from the account's keys")
    request = urllib.request.Request(
        op.base + "/v1/txt2img", data=b"", method="POST",
        headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as e:
        status = e.code
    check(status == 401, f"the next request with the revoked key is a {status}")
    print(f"revoked {key_id}", flush=True)


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    base, token, busy, key_id, api_key = sys.argv[1:]
    shots = os.environ.get("QUOTA_UI_SCREENSHOTS") or None
    if shots:
        os.makedirs(shots, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="quota-ui-chromium-")
    driver = None
    try:
        driver = start_browser(profile)
        op = Operator(driver, base, shots)
        steps = [
            lambda: sign_in(op, token),
            lambda: now_page(op, busy),
            lambda: find_account(op, busy),
            lambda: account_page(op, busy),
            lambda: revoke(op, busy, key_id, api_key),
        ]
        for step in steps:
            step()
            op.collect_console()
        severe = [e for e in op.console if e.get("level") == "SEVERE"]
        for e in op.console:
            print(f"console: {e.get('level')} {e.get('message')}", flush=True)
        check(not severe, f"no error in the browser's console ({len(op.console)} entries)")
        print("all steps passed", flush=True)
        return 0
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        if driver is not None:
            try:
                for entry in driver.get_log("browser"):
                    print(f"console: {entry}", file=sys.stderr)
            except Exception:  # the browser may be gone
                pass
        return 1
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
