"""`coderbundle doctor`'s Coder checks against a REAL Coder server (tests/coder_deployment.py)."""

from __future__ import annotations

import pytest

from coderbundle.doctor import check_coder_cli, check_coder_server, check_token

pytestmark = pytest.mark.slow


def test_server_token_and_cli_rows_on_a_real_deployment(coder_deployment):
    d = coder_deployment
    server, version = check_coder_server(d.url, d.admin.token)
    assert server.status == "ok", server.detail
    assert version.lstrip("v").startswith(d.version)

    token = check_token(d.url, d.admin.token)
    assert token.status == "ok", token.detail
    assert "ci-publisher (template-admin)" in token.detail
    assert "expires " in token.detail  # a real API key: its expiry was looked up

    assert check_coder_cli(str(d.binary), version).status == "ok"


def test_a_member_and_a_wrong_token_are_failed_rows_on_a_real_deployment(coder_deployment):
    d = coder_deployment
    member = d.create_user("doctor-member")
    check = check_token(d.url, member.token)
    assert check.status == "failed"
    assert "template-admin" in check.detail
    rejected = check_token(d.url, "xxxxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy")
    assert rejected.status == "failed"
    assert "rejected the session token" in rejected.detail
    not_coder, _ = check_coder_server(d.url + "/not-coder", d.admin.token)
    assert not_coder.status == "failed"
