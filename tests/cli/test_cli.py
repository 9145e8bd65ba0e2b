"""The ``vern`` command, run as a user would: in process (the same Typer application), and as a
real process where what is proved is the module's own start-up; a real SQLite file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_run import Ran, vern

VERN = [sys.executable, "-m", "vern.app.cli"]


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> Ran:
    return vern(args, env, stdin)


def run_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [*VERN, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    base.update({
        "VERN_ENV": "dev",
        "VERN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"),
        "VERN_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    })
    return base


def test_init_then_check_succeeds(env: dict[str, str]) -> None:
    assert run(["init"], env).returncode == 0
    res = run(["check"], env)
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout


def test_check_names_a_missing_secret_in_production(env: dict[str, str]) -> None:
    env = {**env, "VERN_ENV": "production"}
    res = run(["check"], env)
    assert res.returncode == 2
    assert "VERN_SECRET_KEY" in res.stderr


def test_check_refuses_a_database_that_was_never_initialised(env: dict[str, str]) -> None:
    res = run(["check"], env)
    assert res.returncode == 1
    assert "vern init" in res.stderr


def test_tenants_and_users_are_managed_from_the_command_line(env: dict[str, str]) -> None:
    assert run(["init"], env).returncode == 0
    res = run(["tenant", "create", "--name", "Fjellheim barnehage", "--slug", "fjellheim"], env)
    assert res.returncode == 0, res.stderr
    assert "fjellheim" in run(["tenant", "list"], env).stdout

    res = run(["user", "create", "--email", "kari.nordmann@fjellheim.example.com",
               "--name", "Kari Nordmann", "--org", "fjellheim", "--role", "tenant_admin",
               "--password-stdin"], env, stdin="Fjorden ligger blank i kveld\n")
    assert res.returncode == 0, res.stderr
    listing = run(["user", "list", "--org", "fjellheim"], env).stdout
    assert "kari.nordmann@fjellheim.example.com" in listing
    assert "tenant_admin" in listing

    res = run(["user", "disable", "--email", "kari.nordmann@fjellheim.example.com",
               "--org", "fjellheim"], env)
    assert res.returncode == 0, res.stderr


def test_bad_input_is_refused_with_the_field_named(env: dict[str, str]) -> None:
    assert run(["init"], env).returncode == 0
    res = run(["tenant", "create", "--name", "Havbris skole", "--slug", "Havbris Skole!"], env)
    assert res.returncode == 1
    assert "slug" in res.stderr
    run(["tenant", "create", "--name", "Havbris skole", "--slug", "havbris"], env)
    res = run(["user", "create", "--email", "ikke-en-adresse", "--name", "Per Hansen",
               "--org", "havbris", "--role", "member", "--password-stdin"], env,
              stdin="Fjorden ligger blank i kveld\n")
    assert res.returncode == 1
    assert "email" in res.stderr
    res = run(["user", "create", "--email", "per.hansen@havbris.example.com", "--name", "Per Hansen",
               "--org", "havbris", "--role", "member", "--password-stdin"], env,
              stdin="password1234\n")
    assert res.returncode == 1
    assert "password" in res.stderr
    res = run(["user", "list", "--org", "finnes-ikke"], env)
    assert res.returncode == 1
    assert "org" in res.stderr


def test_demo_loads_twice_and_prints_how_to_sign_in(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "VERN_ENV": "demo"}
    assert run(["init"], env).returncode == 0  # an empty database made first is no obstacle
    first = run(["demo", "--no-serve"], env)
    assert first.returncode == 0, first.stderr
    assert "Nordlys over Lofoten 2026" in first.stdout
    assert "anne.lunde@fjellheim.example.com" in first.stdout
    second = run(["demo", "--no-serve"], env)
    assert second.returncode == 0, second.stderr
    code = run(["demo-code", "anne.lunde@fjellheim.example.com"], env)
    assert code.returncode == 0
    assert code.stdout.strip().isdigit()
    # Everything the demo makes is in its data directory (never the repository's var/).
    assert (tmp_path / "data" / "demo" / "laerbar.db").is_file()
    assert (tmp_path / "data" / "dev-secrets.env").is_file()


def test_the_cli_finds_the_demo_without_vern_env(env: dict[str, str], tmp_path: Path) -> None:
    """After `vern demo`, every command works on the demo with VERN_ENV unset."""
    assert run(["demo", "--no-serve"], {**env, "VERN_ENV": "demo"}).returncode == 0
    bare = {k: v for k, v in env.items()
            if k not in ("VERN_ENV", "VERN_DATABASE_URL", "VERN_AUDIT_LOG_DIR")}
    # `python -m vern.app.cli` reads the demo's settings file at start-up: a real process.
    code = run_process(["demo-code", "anne.lunde@fjellheim.example.com"], bare)
    assert code.returncode == 0, code.stderr
    assert code.stdout.strip().isdigit()
    assert "demo.env" in code.stderr
    listing = run_process(["tenant", "list"], bare)
    assert listing.returncode == 0, listing.stderr
    assert "fjellheim" in listing.stdout


def test_the_demo_port_moves_every_address(env: dict[str, str], tmp_path: Path) -> None:
    res = run(["demo", "--no-serve", "--port", "8123"], {**env, "VERN_ENV": "demo"})
    assert res.returncode == 0, res.stderr
    assert "http://127.0.0.1:8123/login" in res.stdout
    assert ":8000" not in res.stdout
    saved = (tmp_path / "data" / "demo.env").read_text(encoding="utf-8")
    assert "VERN_PORT=8123" in saved
    assert "SECRET" not in saved.upper().replace("_FILE", "")


def test_check_names_a_missing_mail_transport_in_production(env: dict[str, str]) -> None:
    env = {**env, "VERN_ENV": "production", "VERN_SECRET_KEY": "x7Qe9vL2pR4tY8uI0oP3aS5dF6gH1jK-",
           "VERN_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
    res = run(["check"], env)
    assert res.returncode == 2
    assert "VERN_SMTP_URL" in res.stderr


def test_check_says_when_the_mail_server_cannot_be_reached(env: dict[str, str]) -> None:
    assert run(["init"], env).returncode == 0
    res = run(["check"], env)
    assert res.returncode == 0
    assert "VERN_SMTP_URL is not set" in res.stderr
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    res = run(["check"], {**env, "VERN_SMTP_URL": f"smtp://127.0.0.1:{port}"})
    assert res.returncode == 1
    assert "VERN_SMTP_URL" in res.stderr and "cannot reach" in res.stderr


def test_check_connects_to_the_mail_server(env: dict[str, str]) -> None:
    from vern.notify.sink import MailSink

    assert run(["init"], env).returncode == 0
    with MailSink() as sink:
        res = run(["check"], {**env, "VERN_SMTP_URL": sink.url,
                              "VERN_MAIL_FROM": "personvern@solstrand.example.com"})
    assert res.returncode == 0, res.stderr
    assert f"127.0.0.1:{sink.port}" in res.stdout


def test_a_demo_made_with_the_earlier_built_in_keys_is_named(env: dict[str, str]) -> None:
    old = {**env, "VERN_ENV": "test"}  # the fixed keys the demo used before
    assert run(["init"], old).returncode == 0
    assert run(["tenant", "create", "--name", "Havbris skole", "--slug", "havbris"], old).returncode == 0
    made = run(["user", "create", "--email", "per.hansen@havbris.example.com", "--name", "Per Hansen",
                "--org", "havbris", "--role", "member", "--password-stdin"], old,
               stdin="Fjorden ligger blank i kveld\n")
    assert made.returncode == 0, made.stderr
    res = run(["demo", "--no-serve"], {**env, "VERN_ENV": "demo"})
    assert res.returncode == 1
    assert "earlier built-in development keys" in res.stderr and "make clean" in res.stderr

def test_an_organisation_number_with_a_wrong_check_digit_is_refused(env: dict[str, str]) -> None:
    assert run(["init"], env).returncode == 0
    res = run(["tenant", "create", "--name", "Fjordly skole", "--slug", "fjordly",
               "--org-number", "945678123"], env)
    assert res.returncode == 1
    assert "org_number" in res.stderr and "check digit" in res.stderr
    res = run(["tenant", "create", "--name", "Fjordly skole", "--slug", "fjordly",
               "--org-number", "945678127"], env)
    assert res.returncode == 0, res.stderr


def test_a_user_is_invited_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    import sqlite3

    assert run(["init"], env).returncode == 0
    run(["tenant", "create", "--name", "Fjordly skole", "--slug", "fjordly"], env)
    res = run(["user", "invite", "--email", "grete.fjord@fjordly.example.com",
               "--name", "Grete Fjord", "--org", "fjordly", "--role", "tenant_admin"], env)
    assert res.returncode == 0, res.stderr
    assert "invited user" in res.stdout and "72 hours" in res.stdout
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM outbox_messages")]
        links = conn.execute("SELECT purpose, used_at FROM account_tokens").fetchall()
    assert kinds == ["accounts.invitation"]
    assert links == [("invite", None)]
    res = run(["user", "invite", "--email", "grete.fjord@fjordly.example.com",
               "--name", "Grete Fjord", "--org", "fjordly", "--role", "member"], env)
    assert res.returncode == 1 and "email" in res.stderr
    # Grete is the first administrator; a second one waits for a second person.
    res = run(["user", "invite", "--email", "odd.fjord@fjordly.example.com",
               "--name", "Odd Fjord", "--org", "fjordly", "--role", "tenant_admin"], env)
    assert res.returncode == 1 and "--by" in res.stderr
    res = run(["user", "invite", "--email", "odd.fjord@fjordly.example.com",
               "--name", "Odd Fjord", "--org", "fjordly", "--role", "tenant_admin",
               "--by", "grete.fjord@fjordly.example.com", "--need", "Nestleder"], env)
    assert res.returncode == 0, res.stderr
    assert "waits for a second administrator" in res.stdout
    request_id = res.stdout.split("request ")[-1].split()[0]
    # Grete added Odd: she cannot approve it herself.
    res = run(["access", "approve-request", request_id,
               "--by", "grete.fjord@fjordly.example.com"], env)
    assert res.returncode != 0 and "second person" in res.stderr
