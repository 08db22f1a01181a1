"""Forms the console's pages and Keycloak post to the console."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CsrfForm:
    csrf_token: str


@dataclass
class CommuneChoiceForm:
    csrf_token: str
    organization: str


@dataclass
class BackchannelLogoutForm:
    logout_token: str
