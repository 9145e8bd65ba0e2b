"""``vern vendor …`` run as a user would: a real process, a real SQLite file, and the notices
delivered to a real SMTP server on loopback."""

from __future__ import annotations

import time

from tests.cli.test_cli import env, run  # noqa: F401 - the fixture is used by name
from vern.notify.sink import MailSink


def test_seed_measures_and_register_a_subprocessor_that_notifies_its_customer_only(
        env: dict[str, str]) -> None:  # noqa: F811 - the fixture
    with MailSink() as sink:
        env = {**env, "VERN_SMTP_URL": sink.url, "VERN_MAIL_FROM": "vern@solstrand.example.com"}
        assert run(["init"], env).returncode == 0
        for name, slug in (("Fjellheim barnehage", "fjellheim"), ("Havbris skole", "havbris")):
            assert run(["tenant", "create", "--name", name, "--slug", slug], env).returncode == 0
        for email, slug in (("alice.aasen@fjellheim.example.com", "fjellheim"),
                            ("cecilie.carlsen@havbris.example.com", "havbris")):
            res = run(["user", "create", "--email", email, "--name", "Admin", "--org", slug,
                       "--role", "tenant_admin", "--password-stdin"], env,
                      stdin="Fjorden ligger blank i kveld\n")
            assert res.returncode == 0, res.stderr
        res = run(["vendor", "seed"], env)
        assert res.returncode == 0, res.stderr
        assert "measures added" in res.stdout
        assert "encryption-at-rest" in run(["vendor", "measures"], env).stdout

        res = run(["vendor", "subprocessor", "support", "--name", "Nordlys Support Inc",
                   "--service", "Kundestøtte", "--category", "user.name", "--storage", "US",
                   "--customer", "fjellheim"], env)
        assert res.returncode == 1
        assert "transfer_mechanism" in res.stderr and "outside the EU/EEA" in res.stderr

        before = len(sink.messages())
        res = run(["vendor", "subprocessor", "support", "--name", "Nordlys Support Inc",
                   "--service", "Kundestøtte", "--category", "user.name", "--storage", "US",
                   "--mechanism", "scc", "--customer", "fjellheim"], env)
        assert res.returncode == 0, res.stderr
        assert "1 customers notified" in res.stdout
        deadline = time.monotonic() + 10
        while len(sink.messages()) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        notices = [m for m in sink.messages()[before:] if "Nordlys" in m.subject]
        assert [m.to for m in notices] == [["alice.aasen@fjellheim.example.com"]]
        assert "(outside EU/EEA)" in run(["vendor", "subprocessors"], env).stdout
        res = run(["vendor", "windows", "--close"], env)
        assert res.returncode == 0, res.stderr
        assert "closed now" not in res.stdout  # the 30-day window is still open
        assert "support v1: open, closes" in res.stdout
        assert "1 customer(s), 0 objection(s)" in res.stdout

        res = run(["vendor", "customer", "fjellheim", "--org-number", "923609017"], env)
        assert res.returncode == 1 and "org_number" in res.stderr
        res = run(["vendor", "customer", "fjellheim", "--org-number", "923609016",
                   "--contract-start", "2026-01-01", "--breach-hours", "12"], env)
        assert res.returncode == 0, res.stderr
        assert "923609016" in res.stdout and "12 h" in res.stdout

        res = run(["vendor", "maintenance", "--title-nb", "Oppgradering", "--title-en", "Upgrade",
                   "--starts", "2026-01-01T22:00+01:00", "--ends", "2026-01-01T23:00+01:00"], env)
        assert res.returncode == 1 and "starts_at" in res.stderr
