"""The Django and Flask-Mail examples of docs/pytest.md, run as written against the real
frameworks."""

from __future__ import annotations

import re
import textwrap

import pytest

from helpers import REPO

pytest_plugins = ["pytester"]


def readme_block(after: str) -> str:
    """The first ```python block following the line that starts with `after` in docs/pytest.md."""
    text = (REPO / "docs" / "pytest.md").read_text()
    tail = text.split("\n" + after, 1)[1]
    match = re.search(r"```python\n(.*?)```", tail, re.S)
    assert match, f"no python block after {after!r} in docs/pytest.md"
    return match.group(1)


def test_readme_django_example_delivers_django_mail_to_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("django")
    pytest.importorskip("pytest_django")
    pytester.makepyfile(
        example_settings="""
        SECRET_KEY = "test"
        INSTALLED_APPS = []
        DATABASES = {}
        USE_TZ = True
        """
    )
    pytester.makeconftest("import pytest\n\n" + readme_block("Django"))
    pytester.makepyfile(
        test_signup=textwrap.dedent(
            """
            from django.core.mail import EmailMessage


            def test_welcome(mailpit):
                mail = EmailMessage(
                    "Welcome", "Please activate your account.", "app@example.com",
                    ["ann@example.com"], bcc=["audit@example.com"],
                )
                mail.attach("terms.pdf", b"%PDF-1.4 terms", "application/pdf")
                mail.send()
                [msg] = mailpit.wait_for(subject="Welcome", to="ann@example.com")
                assert "activate" in msg.text
                assert msg.attachments[0].data.startswith(b"%PDF")
                assert "audit@example.com" in msg.envelope.rcpt_to
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "pytest_django", "--ds=example_settings")
    result.assert_outcomes(passed=1)


def test_readme_flask_example_delivers_flask_mail_to_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("flask_mail")
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest
            from flask import Flask, request
            from flask_mail import Mail, Message


            def create_app(config):
                app = Flask("shop")
                app.config.update(config)
                mail = Mail(app)

                @app.post("/signup")
                def signup():
                    mail.send(Message("Welcome", sender="shop@example.com",
                                      recipients=[request.form["email"]],
                                      body="Please activate your account."))
                    return "ok"

                return app

            """
        )
        + readme_block("Flask")
    )
    pytester.makepyfile(
        test_signup="""
        def test_signup(mailpit, app):
            app.test_client().post("/signup", data={"email": "ann@example.com"})
            [msg] = mailpit.wait_for(subject="Welcome", to="ann@example.com")
            assert msg.from_.address == "shop@example.com" and "activate" in msg.text
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:django")
    result.assert_outcomes(passed=1)
