"""The console and the identity service served by uvicorn, a real headless Chromium, realm users.

The realm's ``socle-console`` client is pointed at this module's console (callback,
post-logout and back-channel logout URLs) through the admin API for the module, then put
back as it was.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_console.app import create_app as create_console
from socle_console.config import ConsoleSettings
from socle_devstack.processes import free_port
from socle_identity.app import create_app as create_identity
from socle_identity.config import IdentitySettings
from tests.support.apps import settings_kwargs
from tests.support.keycloak_admin import Commune, KeycloakAdmin, create_commune, create_user

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 30


class ServedApp:
    """A Litestar app under a real uvicorn server in a thread of the test process."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        WebDriverWait(self, WAIT_SECONDS, poll_frequency=0.05).until(lambda s: s.server.started)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass(frozen=True)
class Console:
    url: str
    settings: ConsoleSettings

    @property
    def cookie_name(self) -> str:
        return self.settings.cookie_name


@pytest.fixture(scope="module")
def console_url() -> str:
    return f"http://localhost:{free_port()}"


@pytest.fixture(scope="module")
def console_client_registered(kc_admin: KeycloakAdmin, console_url: str) -> Iterator[None]:
    """Point the realm's console client at this module's console; restore it afterwards."""
    client = kc_admin.request("GET", "/clients", params={"clientId": "socle-console"}).json()[0]
    original = {"redirectUris": list(client["redirectUris"]), "attributes": dict(client["attributes"])}
    attributes = dict(client["attributes"])
    attributes["post.logout.redirect.uris"] = f"{console_url}/"
    attributes["backchannel.logout.url"] = f"{console_url}/auth/backchannel-logout"
    kc_admin.request(
        "PUT",
        f"/clients/{client['id']}",
        json={**client, "redirectUris": [f"{console_url}/auth/callback"], "attributes": attributes},
    )
    yield
    kc_admin.request("PUT", f"/clients/{client['id']}", json={**client, **original})


@pytest.fixture(scope="module")
def console(console_url: str, console_client_registered: None, database, keycloak, credentials) -> Iterator[Console]:
    identity_settings = IdentitySettings(
        **settings_kwargs("identity", database, keycloak, keycloak_client_secret=credentials["platform_client"])
    )
    with ServedApp(create_identity(identity_settings), free_port()) as identity:
        settings = ConsoleSettings(
            **settings_kwargs(
                "console",
                database,
                keycloak,
                public_url=console_url,
                oidc_client_secret=credentials["console_client"],
                service_urls={"identity": f"http://127.0.0.1:{identity.port}"},
            )
        )
        port = int(console_url.rsplit(":", 1)[1])
        with ServedApp(create_console(settings), port):
            yield Console(console_url, settings)


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="socle-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The module's browser with no cookie of any site: every test starts signed out."""
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    return chromium


@pytest.fixture(scope="module")
async def console_owner_engine(database) -> Iterator[AsyncEngine]:
    """The console schema's owner, to look at and age sessions as the database holds them."""
    engine = create_async_engine(database.url("console", "owner"))
    yield engine
    await engine.dispose()


@dataclass(frozen=True)
class Agent:
    id: str
    username: str
    password: str
    email: str


def create_agent(kc_admin: KeycloakAdmin, role: str, *communes: Commune) -> Agent:
    user = create_user(kc_admin, role)
    for commune in communes:
        kc_admin.request("POST", f"/organizations/{commune.org_id}/members", json=user.id)
    return Agent(user.id, user.username, user.password, f"{user.username}@example.fr")


@pytest.fixture(scope="module")
def commune_a(kc_admin: KeycloakAdmin) -> Commune:
    return create_commune(kc_admin)


@pytest.fixture(scope="module")
def commune_b(kc_admin: KeycloakAdmin) -> Commune:
    return create_commune(kc_admin)


def wait(driver: webdriver.Chrome) -> WebDriverWait:
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1)


def sign_in(driver: webdriver.Chrome, agent: Agent) -> None:
    """Fill Keycloak's real login form, on the page the console sent the browser to."""
    wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "username")))
    driver.find_element(By.ID, "username").send_keys(agent.username)
    if not driver.find_elements(By.ID, "password"):  # identity-first: the username alone, then the password
        driver.find_element(By.ID, "kc-login").click()
        wait(driver).until(expected_conditions.presence_of_element_located((By.ID, "password")))
    driver.find_element(By.ID, "password").send_keys(agent.password)
    driver.find_element(By.ID, "kc-login").click()


def wait_for_url(driver: webdriver.Chrome, url: str) -> None:
    wait(driver).until(expected_conditions.url_to_be(url), f"stayed at {driver.current_url}")


def session_cookie(driver: webdriver.Chrome, console: Console) -> dict[str, Any]:
    return next(c for c in driver.get_cookies() if c["name"] == console.cookie_name)


def signed_in_session(driver: webdriver.Chrome, console: Console, agent: Agent, commune: Commune) -> str:
    """An agent of one commune logs in from ``/account`` and lands on their commune: the session cookie's value."""
    driver.get(f"{console.url}/account")
    sign_in(driver, agent)
    wait_for_url(driver, f"{console.url}/communes/{commune.alias}")
    return str(session_cookie(driver, console)["value"])


def with_cookie(console: Console, value: str) -> httpx.Client:
    """A plain HTTP client presenting a session cookie (e.g. one the browser held before logout)."""
    return httpx.Client(
        base_url=console.url, headers={"Cookie": f"{console.cookie_name}={value}"}, follow_redirects=False, timeout=20
    )
