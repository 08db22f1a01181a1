"""The OpenAPI document lists every answer, and ``/schema`` renders from the service alone."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from socle_devstack.stack import SERVICES
from tests.console.conftest import chromium  # noqa: F401  (the suite's headless Chromium, a fixture)
from tests.isolation.servers import create_app, no_socle_environment, served_services

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
PROBLEM_JSON = "application/problem+json"
#: The problem answers any route may give (issue: none of them was documented).
PROBLEM_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422)


@pytest.fixture(scope="module")
def documents(database, keycloak, credentials) -> dict[str, dict]:
    with no_socle_environment():
        apps = {service: create_app(service, database, keycloak, credentials) for service in SERVICES}
    return {service: app.openapi_schema.to_schema() for service, app in apps.items()}


def test_every_operation_of_every_service_lists_the_problem_answers(documents) -> None:
    operations = 0
    for service, document in documents.items():
        problem = document["components"]["schemas"]["ProblemDetails"]
        assert set(problem["required"]) == {"type", "title", "status", "detail"}, service
        for path, item in document["paths"].items():
            for method in HTTP_METHODS & set(item):
                responses = item[method]["responses"]
                for status in PROBLEM_STATUSES:
                    content = responses[str(status)]["content"]
                    assert list(content) == [PROBLEM_JSON], (service, method, path, status)
                    assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
                operations += 1
    assert operations > 40


def test_other_answers_are_documented(documents) -> None:
    report = documents["tenancy"]["paths"]["/v1/isolation/reports"]["post"]["responses"]["201"]["content"]
    assert set(report) == {"application/json", "text/html"}
    assert set(documents["tenancy"]["paths"]["/v1/epcis"]["post"]["responses"]) >= {"200", "201"}
    invitation = set(documents["identity"]["paths"]["/v1/members/invitations"]["post"]["responses"])
    assert "202" in invitation  # the same answer for every address (ADR 0010)
    assert not invitation & {"200", "201"}
    assert "503" in documents["identity"]["paths"]["/health/ready"]["get"]["responses"]


@pytest.fixture(scope="module")
def identity_url(database, keycloak, credentials) -> Iterator[str]:
    with served_services(database, keycloak, credentials, ("identity",)) as urls:
        yield urls["identity"]


def test_the_documentation_page_loads_nothing_from_elsewhere(identity_url) -> None:
    with httpx.Client(timeout=30) as http:
        page = http.get(f"{identity_url}/schema")
        assert page.status_code == 200
        assert not re.search(r"https?://", page.text), page.text
        scripts = re.findall(r"<script src='([^']+)'", page.text)
        assert scripts == ["/schema/assets/redoc.standalone.js"]
        bundle = http.get(f"{identity_url}{scripts[0]}")
        assert bundle.status_code == 200
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert b"redoc.standalone.js.license.txt" in bundle.content[:200].lower()
        for ui in ("swagger", "elements", "rapidoc"):  # the CDN-loaded pages are not served
            assert http.get(f"{identity_url}/schema/{ui}").status_code == 404


def test_the_documentation_renders_in_a_browser_under_its_policy(identity_url, chromium) -> None:  # noqa: F811
    """Redoc draws the operations from the service's own bundle, nothing refused by the page's policy."""
    chromium.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__refused = []; document.addEventListener('securitypolicyviolation',"
            " e => window.__refused.push(e.violatedDirective + ' ' + e.blockedURI));"
        },
    )
    chromium.get(f"{identity_url}/schema")
    WebDriverWait(chromium, 60, poll_frequency=0.2).until(
        lambda driver: "/v1/members" in driver.find_element(By.TAG_NAME, "body").text
    )
    assert "Socle identity" in chromium.find_element(By.TAG_NAME, "h1").text
    loaded = chromium.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    refused = chromium.execute_script("return window.__refused")
    assert f"{identity_url}/schema/assets/redoc.standalone.js" in loaded
    # Redoc's side menu shows Redocly's logo from their CDN: the page's policy refuses it, nothing else.
    assert refused == ["img-src https://cdn.redoc.ly/redoc/logo-mini.svg"], refused
    assert [url for url in loaded if not url.startswith(identity_url)] == ["https://cdn.redoc.ly/redoc/logo-mini.svg"]
