"""The test page in a real browser against a real ``vidgate serve`` (demo mode), under
the page's strict Content-Security-Policy, with and without credentials."""

import contextlib
import re
import socket
import threading
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from tests.databases import stored_event_ids
from tests.support import StartVidgate

pytestmark = pytest.mark.browser

VIDEO_ID = re.compile(r"^video_[0-9a-f-]{36}$")
SCREENSHOT = "/tmp/vidgate-page.png"

# Records every value #progress takes, so the test sees the live updates, not just the end.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const bar = document.getElementById("progress");
  new MutationObserver(() => window.__progress.push(bar.value))
    .observe(bar, { attributes: true, attributeFilter: ["value"] });
}"""
# Every CSP violation the document reports, collected from before the first script runs.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""
PLAYER_LOADED = """() => {
  const player = document.getElementById("player");
  return player.readyState >= 1 && player.duration > 0;
}"""


def _open(page: Page, base_url: str) -> list[str]:
    """Load the page; return the list that collects browser errors."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    response = page.goto(f"{base_url}/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "live")
    return problems


def _csp_violations(page: Page) -> list[str]:
    violations: list[str] = page.evaluate("() => window.__cspViolations")
    return violations


def _task(base_url: str, video_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/video/tasks/{video_id}")
    response.raise_for_status()
    data: dict[str, Any] = response.json()["data"]
    return data


def test_create_watch_and_play(page: Page, vidgate_server: Any) -> None:
    base_url = vidgate_server.url
    problems = _open(page, base_url)
    page.evaluate(RECORD_PROGRESS)

    page.fill("#prompt", "a red fox running through snow")
    page.select_option("#seconds", "4")
    page.select_option("#size", "1280x720")
    page.click("#create")

    video_id_box = page.locator("#video-id")
    expect(video_id_box).to_have_text(VIDEO_ID)
    video_id = video_id_box.inner_text()
    expect(page.locator("#error")).to_be_hidden()

    # The upstream's id replaces "pending" as soon as the upstream accepted the task.
    external_box = page.locator("#external-video-id")
    expect(external_box).not_to_have_text("pending", timeout=15_000)
    external_id = external_box.inner_text()
    assert external_id and external_id != video_id

    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    assert page.eval_on_selector("#progress", "bar => bar.value") == 100

    seen = page.evaluate("() => window.__progress")
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert any(0 < value < 100 for value in seen), f"no live progress before the end: {seen}"
    assert seen[-1] == 100

    task = _task(base_url, video_id)
    assert task["status"] == "COMPLETED"
    assert task["externalVideoId"] == external_id
    assert task["videoUrl"]
    assert page.eval_on_selector("#player", "player => player.src") == task["videoUrl"]
    page.wait_for_function(PLAYER_LOADED, timeout=15_000)
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#retry")).to_be_disabled()

    # The recent-tasks list shows the task with both (shortened) IDs and its live state.
    row = page.locator(f'#task-list button[data-video-id="{video_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".c-vid")).to_have_text(video_id[:14] + "-...")
    expect(row.locator(".c-ext")).not_to_have_text("pending")
    expect(row.locator(".c-status")).to_have_text("COMPLETED")

    page.screenshot(path=SCREENSHOT, full_page=True)
    assert problems == []
    assert _csp_violations(page) == []


def test_list_selects_and_updates_live(page: Page, vidgate_server: Any) -> None:
    base_url = vidgate_server.url
    first = httpx.post(f"{base_url}/api/video/tasks", json={"prompt": "first task"})
    assert first.status_code == 201
    first_id = first.json()["data"]["videoId"]

    problems = _open(page, base_url)
    first_row = page.locator(f'#task-list button[data-video-id="{first_id}"]')
    expect(first_row).to_be_visible()

    page.fill("#prompt", "second task")
    page.click("#create")
    expect(page.locator("#video-id")).to_have_text(VIDEO_ID)
    expect(page.locator("#video-id")).not_to_have_text(first_id)
    second_id = page.locator("#video-id").inner_text()

    first_row.click()
    expect(page.locator("#video-id")).to_have_text(first_id)
    expect(first_row).to_have_attribute("aria-current", "true")
    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    assert page.url.endswith(f"#{first_id}")

    # The other listed task keeps updating without a reload or a refresh click.
    second_row = page.locator(f'#task-list button[data-video-id="{second_id}"]')
    expect(second_row.locator(".c-status")).to_have_text("COMPLETED", timeout=30_000)
    expect(second_row.locator(".c-pct")).to_have_text("100%")
    assert problems == []
    assert _csp_violations(page) == []


def test_cancel_then_retry(page: Page, vidgate_server: Any) -> None:
    problems = _open(page, vidgate_server.url)
    page.fill("#prompt", "a fox that changes its mind")
    page.click("#create")
    expect(page.locator("#video-id")).to_have_text(VIDEO_ID)
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page.locator("#retry")).to_be_disabled()

    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("CANCELLED")
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#retry")).to_be_enabled()
    expect(page.locator("#player-wrap")).to_be_hidden()

    page.click("#retry")
    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    expect(page.locator("#external-video-id")).not_to_have_text("pending")
    page.wait_for_function(PLAYER_LOADED, timeout=15_000)
    task = _task(vidgate_server.url, page.locator("#video-id").inner_text())
    assert task["attempts"][-1]["externalVideoId"] == task["externalVideoId"]
    expect(page.locator("#external-video-id")).to_have_text(task["externalVideoId"])
    assert problems == []
    assert _csp_violations(page) == []


def test_reconnects_and_resubscribes_after_a_server_restart(
    page: Page, vidgate_server: Any
) -> None:
    base_url = vidgate_server.url
    problems = _open(page, base_url)
    page.fill("#prompt", "before the restart")
    page.click("#create")
    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    video_id = page.locator("#video-id").inner_text()
    snapshots = page.locator("#event-log li", has_text="subscribed").filter(has_text=video_id[:14])
    expect(snapshots).to_have_count(1)

    vidgate_server.stop()
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "down")
    vidgate_server.start()  # same port, same database
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "live", timeout=30_000)

    # The new socket resubscribed on its own: a fresh snapshot of the selected task arrived.
    expect(snapshots).to_have_count(2)
    expect(page.locator("#status")).to_have_text("COMPLETED")

    page.fill("#prompt", "after the restart")
    page.click("#create")
    expect(page.locator("#video-id")).not_to_have_text(video_id)
    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    # Loads that failed while the server was down (socket, media range requests; the demo
    # simulator also forgets its files on restart) are expected; script errors are not.
    unexpected = [
        problem
        for problem in problems
        if not problem.startswith("Failed to load resource")
        and "WebSocket connection" not in problem
    ]
    assert unexpected == [], unexpected
    assert _csp_violations(page) == []


def test_empty_prompt_shows_the_server_error(page: Page, vidgate_server: Any) -> None:
    base_url = vidgate_server.url
    refused = httpx.post(f"{base_url}/api/video/tasks", json={"prompt": ""})
    assert refused.status_code >= 400
    error = refused.json()["error"]

    _open(page, base_url)
    page.fill("#prompt", "")
    page.click("#create")

    box = page.locator("#error")
    expect(box).to_be_visible()
    expect(box).to_contain_text(error["message"])
    expect(box).to_contain_text(error["code"])
    expect(page.locator("#task-detail")).to_be_hidden()
    expect(page.locator("#auth-panel")).to_be_hidden()  # no credentials asked in mode none
    assert _csp_violations(page) == []


class _InlineCode(HTMLParser):
    """Collects what a ``default-src 'self'`` policy would block in the markup."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        if "style" in names:
            self.found.append(f"style attribute on <{tag}>")
        self.found.extend(f"{name} handler on <{tag}>" for name in names if name.startswith("on"))
        for name, value in attrs:
            if value and value.strip().lower().startswith(("javascript:", "data:")):
                self.found.append(f"{name}={value[:20]} on <{tag}>")


def test_page_works_under_a_strict_csp(vidgate_server: Any) -> None:
    base_url = vidgate_server.url
    page = httpx.get(f"{base_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe" not in policy
    parser = _InlineCode()
    parser.feed(page.text)
    assert parser.found == []
    assert 'src="/static/app.js"' in page.text
    assert 'href="/static/style.css"' in page.text

    script = httpx.get(f"{base_url}/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    for risky in ("innerHTML", "eval(", "new Function", 'setAttribute("style"', "cssText"):
        assert risky not in script.text, risky
    style = httpx.get(f"{base_url}/static/style.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert "@import" not in style.text and "url(http" not in style.text


# ---------------------------------------------------------------- with credentials

JWT_SECRET = "e2e-page-secret-" + "k" * 40
JWT_ISSUER = "https://login.example.com/"
JWT_AUDIENCE = "vidgate-page"


def _token(subject: str, *, secret: str = JWT_SECRET) -> str:
    claims = {
        "sub": subject,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def test_page_asks_for_a_token_and_uses_it(page: Page, start_vidgate: StartVidgate) -> None:
    server = start_vidgate(
        VIDGATE_AUTH_MODE="jwt",
        VIDGATE_JWT_SECRET=JWT_SECRET,
        VIDGATE_JWT_ISSUER=JWT_ISSUER,
        VIDGATE_JWT_AUDIENCE=JWT_AUDIENCE,
    )
    problems = _open(page, server.url)

    # Without a token the list is refused, and the page says what to do about it.
    panel = page.locator("#auth-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#auth-needed")).to_contain_text("Credentials needed")
    expect(page.locator("#auth-needed")).to_contain_text("AUTH_REQUIRED")
    expect(page.locator("#auth-toggle")).to_have_attribute("data-auth", "needed")
    expect(page.locator("#error")).to_contain_text("API key or token")

    # A token from another issuer is refused just as clearly.
    page.fill("#token", _token("alice", secret="not-the-secret-" + "x" * 40))
    page.click("#token-save")
    expect(page.locator("#auth-needed")).to_contain_text("Credentials refused")
    expect(page.locator("#auth-needed")).to_contain_text("TOKEN_INVALID")

    token = _token("alice")
    page.fill("#token", token)
    page.click("#token-save")
    expect(panel).to_be_hidden()
    expect(page.locator("#auth-toggle")).to_have_attribute("data-auth", "set")
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "live")
    assert page.evaluate("() => sessionStorage.getItem('vidgate.token')") == token
    assert token not in page.locator("#snippet").inner_text()

    page.fill("#prompt", "a fox with credentials")
    page.click("#create")
    expect(page.locator("#video-id")).to_have_text(VIDEO_ID)
    expect(page.locator("#external-video-id")).not_to_have_text("pending", timeout=15_000)
    expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
    page.wait_for_function(PLAYER_LOADED, timeout=15_000)
    video_id = page.locator("#video-id").inner_text()

    # The task belongs to the token's user.
    owned = httpx.get(
        f"{server.url}/api/video/tasks/{video_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert owned.status_code == 200
    assert owned.json()["data"]["userId"] == "alice"

    # The token stays for this tab across a reload; "Forget" drops it.
    page.reload()
    expect(page.locator("#ws-state")).to_have_attribute("data-state", "live")
    expect(page.locator(f'#task-list button[data-video-id="{video_id}"]')).to_be_visible()
    expect(panel).to_be_hidden()
    page.click("#auth-toggle")
    page.click("#token-forget")
    assert page.evaluate("() => sessionStorage.getItem('vidgate.token')") is None
    expect(page.locator("#auth-status")).to_have_text("no key set")
    # The socket, reopened without a token, is refused: the page asks again.
    expect(page.locator("#ws-state")).to_have_text("needs credentials")
    expect(page.locator("#auth-toggle")).to_have_attribute("data-auth", "needed")

    # Refused requests (401) are logged by the browser; nothing else may be.
    unexpected = [p for p in problems if "401" not in p and "WebSocket connection" not in p]
    assert unexpected == [], unexpected
    assert _csp_violations(page) == []


# ---------------------------------------------------------------- a network drop


class Cable:
    """A TCP forwarder between the browser and vidgate that the test can cut and mend.

    Cutting closes every connection through it and refuses new ones, as a dropped network
    would; vidgate itself runs on, so the task goes on while the page cannot hear it.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._up = True
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._up = False
        with self._lock:
            ends, self._open = self._open, []
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def mend(self) -> None:
        self._up = True

    def close(self) -> None:
        self.cut()
        self._listener.close()


def _logged_event_ids(entries: Locator, kind: str = "task events") -> list[int]:
    """The event ids the log shows, newest first: of its task events, or of one ``kind``."""
    found = entries.evaluate_all(
        "(items, kind) => items.filter(i => {"
        " const k = i.querySelector('.log-kind').textContent;"
        " return kind === 'task events' ? k !== 'subscribed' : k === kind;"
        "}).map(i => i.dataset.eventId)",
        kind,
    )
    return [int(value) for value in found]


def test_a_network_drop_misses_no_event_and_doubles_none(
    page: Page, start_vidgate: StartVidgate
) -> None:
    server = start_vidgate(job_seconds=12)  # polls back off: events 1-7 s apart
    port = int(server.url.rsplit(":", 1)[1])
    cable = Cable(port)
    try:
        problems = _open(page, f"http://127.0.0.1:{cable.port}")
        page.fill("#prompt", "a fox behind a flaky network")
        page.click("#create")
        expect(page.locator("#video-id")).to_have_text(VIDEO_ID)
        video_id = page.locator("#video-id").inner_text()
        expect(page.locator("#status")).to_have_text("PROCESSING", timeout=15_000)
        shown = int(page.eval_on_selector("#progress", "bar => bar.value"))
        entries = page.locator(f'#event-log li[data-video-id="{video_id}"]')
        expect(entries.first).to_have_attribute("data-event-id", re.compile(r"^\d+$"))

        before = _logged_event_ids(entries)

        cable.cut()
        expect(page.locator("#ws-state")).to_have_attribute("data-state", "down")
        deadline = time.monotonic() + 20
        while _task(server.url, video_id)["progress"] <= shown:  # vidgate, not the page
            assert time.monotonic() < deadline
            time.sleep(0.1)
        missed = stored_event_ids(server.env["VIDGATE_DATABASE_URL"], video_id)
        cable.mend()

        expect(page.locator("#ws-state")).to_have_attribute("data-state", "live", timeout=30_000)
        expect(page.locator("#status")).to_have_text("COMPLETED", timeout=30_000)
        resumed = page.locator("#event-log li", has_text="resumed").filter(has_text=video_id[:14])
        expect(resumed).to_have_count(1)

        received = _logged_event_ids(entries)
        # The first snapshot shows the events before it; every later one arrives once.
        snapshots = _logged_event_ids(entries, kind="subscribed")
        stored = [
            i
            for i in stored_event_ids(server.env["VIDGATE_DATABASE_URL"], video_id)
            if i > snapshots[-1]
        ]
        assert sorted(received) == stored, "every event once"
        assert received == sorted(received, reverse=True), "newest first, in order"
        assert len(missed) > len(before), "events went by while the network was down"
        unexpected = [
            p
            for p in problems
            if not p.startswith("Failed to load resource") and "WebSocket connection" not in p
        ]
        assert unexpected == [], unexpected
        assert _csp_violations(page) == []
    finally:
        cable.close()
