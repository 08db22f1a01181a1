"""Keycloak's login pages driven over plain HTTP, the way a browser without JavaScript would."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from tests.support.totp import fresh_totp

_FORM = re.compile(r"<form[^>]*\baction=\"([^\"]+)\"", re.IGNORECASE)
_INPUT = re.compile(r"<input[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"\b(id|name|value)=\"([^\"]*)\"", re.IGNORECASE)
_SOCIAL = re.compile(r"<a[^>]*\bid=\"social-([^\"]+)\"[^>]*\bhref=\"([^\"]+)\"", re.IGNORECASE | re.DOTALL)


class Browser:
    """Keycloak's login pages as a browser without JavaScript sees them: forms, redirects, cookies.

    Cookies are kept per path by hand: both realms live on one host, and Keycloak's cookies are
    ``Secure`` (which httpx's jar does not send over plain http). Redirects are followed one by
    one so that a test can see where each one goes.
    """

    def __init__(self) -> None:
        self.client = httpx.Client(timeout=30, follow_redirects=False)
        self.jar: dict[tuple[str, str], str] = {}
        self.visited: list[str] = []

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        path = urlsplit(url).path
        cookie = "; ".join(f"{name}={value}" for (name, scope), value in self.jar.items() if path.startswith(scope))
        self.visited.append(url)
        answer = self.client.request(method, url, headers={"Cookie": cookie} if cookie else {}, **kwargs)
        for header in answer.headers.get_list("set-cookie"):
            pair, _, attributes = header.partition(";")
            name, _, value = pair.partition("=")
            scope = next(
                (a.split("=", 1)[1].strip() for a in attributes.split(";") if a.strip().lower().startswith("path=")),
                "/",
            )
            self.jar[(name.strip(), scope)] = value
        return answer

    def follow(self, response: httpx.Response, stop: Callable[[str], bool] = lambda _: False) -> httpx.Response:
        """Follow redirects until a page, or until the next location satisfies ``stop`` (not fetched)."""
        for _ in range(15):
            if not response.is_redirect:
                return response
            location = redirect_target(response)
            if stop(location):
                return response
            response = self.send("GET", location)
        raise AssertionError(f"too many redirects: {self.visited[-15:]}")

    def submit(self, page: httpx.Response, **values: str) -> httpx.Response:
        """Fill the page's form (hidden fields kept) and post it."""
        action = form_action(page)
        assert action is not None, f"no form on {page.url}: {visible_text(page)[:1500]}"
        # Keycloak writes some forms' action relative to the page (the consent form).
        return self.send("POST", urljoin(str(page.url), action), data={**fields(page), **values})

    def close(self) -> None:
        self.client.close()


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE verifier and its S256 challenge, as the console sends them with a code flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_request(
    issuer: str, client_id: str, redirect_uri: str, *, scope: str = "openid", pkce: bool = True, **extra: str
) -> tuple[str, str]:
    """An authorization-code request's URL (fresh state and nonce, PKCE S256) and its verifier ('' without PKCE)."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        **extra,
    }
    verifier = ""
    if pkce:
        verifier, challenge = pkce_pair()
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return f"{issuer}/protocol/openid-connect/auth?{urlencode(params)}", verifier


def redirect_target(response: httpx.Response) -> str:
    """The absolute URL a redirect points to (Keycloak sometimes answers with a relative one)."""
    return urljoin(str(response.url), response.headers["location"])


def form_action(page: httpx.Response) -> str | None:
    """Where the page's (first) form posts to, or None when the page has no form."""
    form = _FORM.search(page.text)
    return None if form is None else html.unescape(form.group(1))


def _inputs(page: httpx.Response) -> list[dict[str, str]]:
    """The attributes of every input on the page that tests look at."""
    return [{k.lower(): html.unescape(v) for k, v in _ATTR.findall(tag)} for tag in _INPUT.findall(page.text)]


def fields(page: httpx.Response) -> dict[str, str]:
    """The named inputs of the page's form with their values."""
    return {attributes["name"]: attributes.get("value", "") for attributes in _inputs(page) if "name" in attributes}


def input_value(page: httpx.Response, element_id: str) -> str | None:
    return next((a.get("value", "") for a in _inputs(page) if a.get("id") == element_id), None)


def providers_offered(page: httpx.Response) -> dict[str, str]:
    """The identity providers the page offers as buttons: alias → link."""
    return {alias: html.unescape(href) for alias, href in _SOCIAL.findall(page.text)}


def visible_text(page: httpx.Response) -> str:
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page.text, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))).strip()


def log_in(
    browser: Browser,
    page: httpx.Response,
    username: str,
    password: str,
    *,
    otp_secret: str | None = None,
    used: set[str] | None = None,
    stop: Callable[[str], bool] = lambda _: False,
) -> httpx.Response:
    """Fill Keycloak's login pages from ``page`` on (password, OTP, consent), following redirects.

    Returns the first answer that is none of them: where the login led (the client's page, a
    redirect whose location satisfies ``stop``, Keycloak's "device login successful"), or a page
    Keycloak kept showing (an error).
    """
    for _ in range(6):
        names = fields(page)
        if page.is_redirect:
            return page
        if "username" in names or "password" in names:
            page = browser.follow(browser.submit(page, username=username, password=password), stop)
        elif "otp" in names:
            assert otp_secret is not None, f"{username} is asked for an OTP: {visible_text(page)[:500]}"
            code = fresh_totp(otp_secret, used if used is not None else set())
            page = browser.follow(browser.submit(page, otp=code), stop)
        elif 'name="accept"' in page.text:
            page = browser.follow(browser.submit(page, accept="accept"), stop)
        else:
            return page
    return page


def approve_device_login(
    verification_uri: str, username: str, password: str, *, otp_secret: str | None = None, used: set[str] | None = None
) -> httpx.Response:
    """A person approves a device login (``socle-login``) in a browser: code page, password, OTP, consent."""
    browser = Browser()
    try:
        page = browser.follow(browser.send("GET", verification_uri))
        return log_in(browser, page, username, password, otp_secret=otp_secret, used=used)
    finally:
        browser.close()


def complete_invitation(link: str, *, password: str, first_name: str, last_name: str) -> httpx.Response:
    """Follow an invitation e-mail's link and do what it asks: e-mail, profile, password, OTP enrolment.

    Returns the last page Keycloak shows (its "account updated" page when everything was accepted).
    """
    browser = Browser()
    try:
        page = browser.follow(browser.send("GET", link))
        for _ in range(8):
            names = fields(page)
            onward = [html.unescape(href) for href in re.findall(r'href="([^"]*action-token[^"]*)"', page.text)]
            if "password-new" in names:
                page = browser.follow(browser.submit(page, **{"password-new": password, "password-confirm": password}))
            elif "totpSecret" in names:
                code = fresh_totp(names["totpSecret"], set())
                page = browser.follow(browser.submit(page, totp=code, userLabel="téléphone"))
            elif "firstName" in names:
                page = browser.follow(browser.submit(page, firstName=first_name, lastName=last_name))
            elif onward:  # "follow these steps" page of a link opened in a new browser
                page = browser.follow(browser.send("GET", onward[0]))
            else:
                return page
        return page
    finally:
        browser.close()
