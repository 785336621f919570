"""The tablet's HTTP API over a real uvicorn on 127.0.0.1: sessions, roles, scoping, decisions, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lfr.adapters.tablet.app import ROUTERS, create_tablet_app
from lfr.adapters.tablet.errors import status_for
from lfr.adapters.tablet.sessions import COOKIE_NAME
from lfr.config import TabletSettings
from lfr.domain import errors
from lfr.domain.clock import ManualClock
from lfr.domain.principal import Role
from lfr.domain.window import WindowSpec
from tests.support import tiny_jpeg
from tests.tablet_support import PASSWORD, SECRET, SUPERVISOR, LiveServer, build_world, csrf_from

START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture
def world():
    w = build_world(ManualClock(START), officers=frozenset({"olivia", "owen"}))
    w.add_user("olivia", Role.OFFICER)
    w.add_user("owen", Role.OFFICER)
    w.add_user("oscar", Role.OFFICER)  # not assigned to the window
    w.add_user("sam", Role.SUPERVISOR)
    w.add_user("aud", Role.AUDITOR)
    yield from serve(w)


def serve(world):
    world.clients = []
    with LiveServer(world.app()) as base_url:
        world.base_url = base_url
        yield world
        for client in world.clients:
            client.close()


def client_for(world, name: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=world.base_url)
    world.clients.append(client)
    if name is not None:
        sign_in(client, name)
    return client


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD, **headers: str):
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login", data={"username": name, "password": password, "csrf_token": token}, headers=headers
    )
    if response.status_code == 303 and not headers:
        client.headers["X-CSRF-Token"] = client.get("/api/session").json()["csrf_token"]
    return response


def audit(world, action: str):
    with world.store() as uow:
        return [r for r in uow.audit.records() if r.action == action]


def decide(client, alert_id: str, outcome: str = "false_alert", version: int = 1, **extra):
    body = {"outcome": outcome, "expected_version": version, **extra}
    return client.post(f"/api/alerts/{alert_id}/adjudication", json=body)


def test_sign_in_issues_a_hardened_session_cookie(world):
    client = client_for(world)
    response = sign_in(client, "olivia")
    assert response.status_code == 303
    assert response.headers["location"] == "/alerts"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP in this test; see the next test for HTTPS
    page = client.get("/alerts")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script: the CSP would block it
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/api/alerts").headers["cache-control"] == "no-store"


def test_cookie_is_secure_over_https(world):
    # Behind a TLS-terminating proxy: uvicorn trusts X-Forwarded-Proto from 127.0.0.1.
    client = client_for(world)
    response = sign_in(client, "olivia", **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]
    assert "max-age" in response.headers["strict-transport-security"]


def test_wrong_password_and_unknown_name_are_refused_alike(world):
    client = client_for(world)
    wrong = sign_in(client, "olivia", "not the password")
    unknown = sign_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "unknown name or wrong password" in wrong.text
    assert "unknown name or wrong password" in unknown.text
    assert client.get("/api/session").status_code == 401


def test_failed_sign_ins_for_one_name_are_throttled_and_audited_without_the_password(world):
    client = client_for(world)
    for _ in range(5):
        assert sign_in(client, "olivia", "wrong guess 1234").status_code == 401
    refused = sign_in(client, "olivia")  # even the right password waits now
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"  # then doubling: see test_tablet_lockout.py
    assert "too many failed sign-ins" in refused.text
    assert sign_in(client, "OLIVIA ").status_code == 429  # the same name however it is typed
    assert client.get("/api/session").status_code == 401
    warnings = audit(world, "policy.warning")
    assert [(r.details["warning"], r.details["by"], r.details["name_tried"]) for r in warnings] == [
        ("sign_in_throttled", "address_and_name", "olivia")
    ]  # once per lock, not once per refused attempt
    with world.store() as uow:
        trail = repr(list(uow.audit.records()))
    assert "wrong guess 1234" not in trail
    assert PASSWORD not in trail
    assert sign_in(client_for(world), "owen").status_code == 303  # another person is unaffected
    world.clock.advance(timedelta(seconds=29))
    assert sign_in(client, "olivia").headers["retry-after"] == "1"
    world.clock.advance(timedelta(seconds=1))
    assert sign_in(client, "olivia").status_code == 303


def test_failed_sign_ins_from_one_address_throttle_that_address_only(world):
    client = client_for(world)
    here, elsewhere = {"X-Forwarded-For": "10.0.0.7"}, {"X-Forwarded-For": "10.0.0.8"}
    for i in range(20):  # a different name each time: only the address limit can catch this
        assert sign_in(client, f"guess-{i}", "wrong guess 1234", **here).status_code == 401
    assert sign_in(client, "olivia", **here).status_code == 429
    assert sign_in(client, "olivia", **elsewhere).status_code == 303
    [warning] = audit(world, "policy.warning")
    assert (warning.details["by"], warning.subject_id) == ("address", "10.0.0.7")


def test_a_correct_password_clears_the_names_earlier_failures(world):
    client = client_for(world)
    for _ in range(4):
        assert sign_in(client, "olivia", "wrong guess 1234").status_code == 401
    assert sign_in(client, "olivia").status_code == 303
    for _ in range(4):
        assert sign_in(client_for(world), "olivia", "wrong guess 1234").status_code == 401
    assert sign_in(client_for(world), "olivia").status_code == 303


def test_signing_out_ends_copies_of_the_session_cookie_too(world):
    tablet = client_for(world, "olivia")
    copied = client_for(world)  # someone who got hold of the cookie (shared device, stolen backup)
    copied.cookies.set(COOKIE_NAME, tablet.cookies[COOKIE_NAME])
    copied.headers["X-CSRF-Token"] = tablet.headers["X-CSRF-Token"]
    assert copied.get("/api/alerts").status_code == 200  # a bearer cookie: the copy works until...
    signed_out = tablet.post("/logout")
    assert signed_out.status_code == 303
    refused = copied.get("/api/alerts")
    assert refused.status_code == 401
    assert "signed out" in refused.json()["detail"]
    assert copied.get("/alerts", headers={"accept": "text/html"}).status_code == 303  # to the sign-in
    assert tablet.get("/api/session").status_code == 401
    del tablet.headers["X-CSRF-Token"]  # the old session's token; the form carries the new one
    assert sign_in(tablet, "olivia").status_code == 303  # signing in again works at once
    assert tablet.get("/api/alerts").status_code == 200
    assert copied.get("/api/alerts").status_code == 401  # the copy stays dead


def test_signing_out_one_person_leaves_others_signed_in(world):
    olivia, owen = client_for(world, "olivia"), client_for(world, "owen")
    assert olivia.post("/logout").status_code == 303
    assert owen.get("/api/alerts").status_code == 200


def test_passwords_are_stored_as_argon2_hashes(world):
    with world.store() as uow:
        stored = uow.principals.password_hash("olivia")
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    with pytest.raises(errors.InvalidInput):
        world.services.passwords.set_password("olivia", "short", "test")


def test_sign_in_without_csrf_token_is_refused(world):
    client = client_for(world)
    client.get("/login")
    response = client.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert response.status_code == 403


def test_officer_sees_only_alerts_of_windows_they_are_assigned_to(world):
    alert_id = world.observe(0).alert_id
    olivia, oscar = client_for(world, "olivia"), client_for(world, "oscar")
    listed = olivia.get("/api/alerts").json()["alerts"]
    assert [a["id"] for a in listed] == [alert_id]
    assert listed[0]["subject"]["category"] == "Wanted on warrant"
    assert listed[0]["location"] == "High Street north"
    assert oscar.get("/api/alerts").json()["alerts"] == []
    unknown = oscar.get("/api/alerts/alr_doesnotexist")
    for path in ("", "/crop.jpg", "/reference.jpg"):
        hidden = oscar.get(f"/api/alerts/{alert_id}{path}")
        assert hidden.status_code == 404
        assert hidden.json()["detail"] == f"no alert {alert_id}"  # same words as for a missing one
    assert unknown.json()["detail"] == "no alert alr_doesnotexist"
    assert decide(oscar, alert_id).status_code == 404
    assert audit(world, "alert.consulted") == []
    assert audit(world, "alert.adjudicated") == []


def test_viewing_a_crop_is_an_audited_consultation_and_listing_is_not(world):
    alert_id = world.observe(0).alert_id
    olivia = client_for(world, "olivia")
    olivia.get("/api/alerts")
    assert audit(world, "alert.consulted") == []
    crop = olivia.get(f"/api/alerts/{alert_id}/crop.jpg")
    assert crop.status_code == 200
    assert crop.headers["content-type"] == "image/jpeg"
    assert crop.headers["cache-control"] == "no-store"
    assert crop.content == tiny_jpeg(b"probe")
    reference = olivia.get(f"/api/alerts/{alert_id}/reference.jpg")
    assert reference.content == tiny_jpeg(b"reference", size=64)
    consulted = audit(world, "alert.consulted")
    assert [(r.actor, r.subject_id, r.details["channel"]) for r in consulted] == [
        ("olivia", alert_id, "tablet")
    ]


def test_alert_without_reference_image_says_so(world):
    alert_id = world.observe(1).alert_id
    olivia = client_for(world, "olivia")
    assert olivia.get("/api/alerts").json()["alerts"][0]["reference_url"] is None
    assert olivia.get(f"/api/alerts/{alert_id}/reference.jpg").status_code == 404


@pytest.fixture
def pictured_world():
    """Person 0 enrolled with three photos; repeat sightings within 60 s share a card."""
    w = build_world(
        ManualClock(START), officers=frozenset({"olivia"}), reference_images=3, group_interval_seconds=60
    )
    w.add_user("olivia", Role.OFFICER)
    w.add_user("oscar", Role.OFFICER)  # not assigned to the window
    yield from serve(w)


def test_every_reference_image_of_the_subject_is_listed_and_fetched_as_any_listing_fact(pictured_world):
    world = pictured_world
    alert_id = world.observe(0).alert_id
    olivia, oscar = client_for(world, "olivia"), client_for(world, "oscar")
    [listed] = olivia.get("/api/alerts").json()["alerts"]
    base = f"/api/alerts/{alert_id}"
    assert listed["reference_images"] == [
        {"url": f"{base}/reference/0", "provenance": "custody image"},
        {"url": f"{base}/reference/1", "provenance": "photo 1"},
        {"url": f"{base}/reference/2", "provenance": "photo 2"},
    ]
    assert listed["reference_url"] == f"{base}/reference.jpg"
    expected = [tiny_jpeg(b"reference", size=64)] + [tiny_jpeg(b"reference %d" % n, size=64) for n in (1, 2)]
    for n, jpeg in enumerate(expected):
        image = olivia.get(f"{base}/reference/{n}")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert image.headers["cache-control"] == "no-store"
        assert image.content == jpeg
    assert olivia.get(f"{base}/reference.jpg").content == expected[0]
    assert olivia.get(f"{base}/reference/3").json()["detail"] == f"alert {alert_id} has no reference image 3"
    assert olivia.get(f"{base}/reference/-1").status_code == 422
    for n in (0, 2, 3):  # an alert of a window he is not assigned to does not exist for him
        hidden = oscar.get(f"{base}/reference/{n}")
        assert (hidden.status_code, hidden.json()["detail"]) == (404, f"no alert {alert_id}")
    assert audit(world, "alert.consulted") == []  # listing data, like the rest of the card; the crop is


def test_repeat_sightings_within_the_interval_name_the_first_alert_as_their_group(pictured_world):
    world = pictured_world
    first = world.observe(0).alert_id
    world.clock.advance(timedelta(seconds=30))
    again = world.observe(0).alert_id  # a second passage: another track, another alert
    other = world.observe(1).alert_id
    world.clock.advance(timedelta(seconds=61))
    later = world.observe(0).alert_id
    olivia = client_for(world, "olivia")
    groups = {a["id"]: a["group_id"] for a in olivia.get("/api/alerts").json()["alerts"]}
    assert groups == {first: first, again: first, other: other, later: later}
    assert len({first, again, later}) == 3  # grouping is a view: every alert is still its own
    assert olivia.get(f"/api/alerts/{again}").json()["group_id"] == first


def test_adjudication_is_recorded_audited_and_final(world):
    alert_id = world.observe(0).alert_id
    olivia, owen = client_for(world, "olivia"), client_for(world, "owen")
    response = decide(olivia, alert_id, "not_engaged", notes="  lost in crowd ")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["outcome"], body["adjudicated_by"], body["notes"]) == (
        "adjudicated",
        "not_engaged",
        "olivia",
        "lost in crowd",
    )
    [record] = audit(world, "alert.adjudicated")
    assert (record.actor, record.subject_id, record.details["outcome"]) == ("olivia", alert_id, "not_engaged")
    again = decide(owen, alert_id, "confirmed", version=2)
    assert again.status_code == 409
    assert "already adjudicated by olivia" in again.json()["detail"]
    assert len(audit(world, "alert.adjudicated")) == 1


def test_stale_decision_is_refused_with_409(world):
    alert_id = world.observe(0).alert_id
    olivia = client_for(world, "olivia")
    assert decide(olivia, alert_id, version=1).status_code == 200
    stale = decide(olivia, alert_id, version=1)
    assert stale.status_code == 409
    assert stale.json()["error"] == "StaleUpdate"
    assert "reload" in stale.json()["detail"]


@pytest.fixture
def two_person_world():
    world = build_world(ManualClock(START), two_person_rule=True, officers=frozenset({"a", "b"}))
    world.add_user("a", Role.OFFICER)
    world.add_user("b", Role.OFFICER)
    yield from serve(world)


def test_two_person_rule_needs_a_different_second_officer(two_person_world):
    world = two_person_world
    alert_id = world.observe(0).alert_id
    first, second = client_for(world, "a"), client_for(world, "b")
    assert first.get("/api/session").json()["two_person_rule"] is True
    confirmed = decide(first, alert_id, "confirmed").json()
    assert confirmed["state"] == "awaiting_verification"
    own = first.post(f"/api/alerts/{alert_id}/verification", json={"agree": True, "expected_version": 2})
    assert own.status_code == 403
    verified = second.post(
        f"/api/alerts/{alert_id}/verification", json={"agree": True, "expected_version": 2}
    )
    assert verified.status_code == 200
    assert (verified.json()["state"], verified.json()["verified_by"]) == ("adjudicated", "b")
    [record] = audit(world, "alert.verified")
    assert (record.actor, record.details["agree"]) == ("b", True)


def test_roles_decide_who_may_adjudicate_and_read_the_audit_log(world):
    alert_id = world.observe(0).alert_id
    auditor, officer = client_for(world, "aud"), client_for(world, "olivia")
    assert decide(auditor, alert_id).status_code == 403
    assert officer.get("/api/audit").status_code == 403
    records = auditor.get("/api/audit", params={"limit": 1000}).json()
    assert "alert.raised" in [r["action"] for r in records]
    assert auditor.get("/deployments").status_code == 200
    assert officer.get("/deployments", headers={"accept": "text/html"}).status_code == 403


def test_missing_or_forged_csrf_token_is_refused(world):
    alert_id = world.observe(0).alert_id
    olivia, owen = client_for(world, "olivia"), client_for(world, "owen")
    body = {"outcome": "false_alert", "expected_version": 1}
    missing = olivia.post(f"/api/alerts/{alert_id}/adjudication", json=body, headers={"X-CSRF-Token": ""})
    forged = olivia.post(
        f"/api/alerts/{alert_id}/adjudication",
        json=body,
        headers={"X-CSRF-Token": owen.headers["X-CSRF-Token"]},  # a real token, of another session
    )
    assert missing.status_code == forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]
    assert audit(world, "alert.adjudicated") == []


def test_every_state_changing_route_demands_a_csrf_token(world):
    client = client_for(world, "olivia")
    del client.headers["X-CSRF-Token"]
    changing = [
        (route.path, method)
        for router in ROUTERS
        for route in router.routes
        for method in getattr(route, "methods", set()) - {"GET", "HEAD", "OPTIONS"}
    ]
    assert len(changing) >= 4
    for path, method in changing:
        response = client.request(
            method, path.replace("{alert_id}", "alr_x").replace("{window_id}", "win_x"), json={}
        )
        assert response.status_code == 403, (method, path)


def test_idle_session_expires_and_activity_keeps_it_alive(world):
    olivia = client_for(world, "olivia")
    for _ in range(3):
        world.clock.advance(timedelta(minutes=10))
        assert olivia.get("/api/session").status_code == 200  # activity restarts the idle clock
    world.clock.advance(timedelta(minutes=16))
    expired = olivia.get("/api/session")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    page = olivia.get("/alerts", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_session_ends_after_its_maximum_age_whatever_the_activity(world):
    olivia = client_for(world, "olivia")
    for _ in range(12 * 6 + 1):
        world.clock.advance(timedelta(minutes=10))
        response = olivia.get("/api/session")
    assert response.status_code == 401


def test_tampered_session_cookie_is_not_accepted(world):
    olivia = client_for(world, "olivia")
    value = olivia.cookies["lfr_session"]
    olivia.cookies.set("lfr_session", value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
    assert olivia.get("/api/session").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "arrested", "expected_version": 1},
        {"outcome": "confirmed"},
        {"outcome": "confirmed", "expected_version": 0},
        {"outcome": "confirmed", "expected_version": 1, "notes": "x" * 2001},
        {"outcome": "confirmed", "expected_version": 1, "decided_by": "someone else"},
        [],
    ],
)
def test_malformed_adjudication_body_is_422_and_changes_nothing(world, body):
    alert_id = world.observe(0).alert_id
    olivia = client_for(world, "olivia")
    response = olivia.post(f"/api/alerts/{alert_id}/adjudication", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInput"
    assert olivia.get("/api/alerts").json()["alerts"][0]["state"] == "raised"


def test_unknown_or_malformed_alert_id(world):
    olivia = client_for(world, "olivia")
    assert olivia.get("/api/alerts/alr_0000").status_code == 404
    assert decide(olivia, "alr_0000").status_code == 404
    assert olivia.get("/api/alerts/..%2Fetc").status_code in (404, 422)
    assert olivia.get("/api/alerts/" + "a" * 65).status_code == 422


def test_deployment_overview_shows_counts_for_supervisors_only(world):
    world.observe(0)
    world.observe(None)
    world.observe(None, camera="cam-2")
    world.ingest.flush_counters()
    supervisor, officer = client_for(world, "sam"), client_for(world, "olivia")
    [window] = supervisor.get("/api/deployments/overview").json()["windows"]
    assert window["window"]["armed"] is True
    assert window["window"]["seconds_left"] == pytest.approx(timedelta(hours=2).total_seconds())
    assert (window["faces_seen"], window["faces_discarded"]) == (3, 2)
    assert window["faces_by_outcome"] == {"alert": 1, "no_match": 2}
    assert window["alerts_by_outcome"] == {"open": 1}
    assert [(c["camera_id"], c["faces_seen"], c["connected"]) for c in window["cameras"]] == [
        ("cam-1", 2, False),  # the tablet runs in the matcher's process: it knows no camera streams now
        ("cam-2", 1, False),
    ]
    assert officer.get("/api/deployments/overview").status_code == 403
    assert [w["location"] for w in officer.get("/api/deployments").json()] == ["High Street north"]
    assert client_for(world, "oscar").get("/api/deployments").json() == []


def test_openapi_documents_the_json_api_only(world):
    assert client_for(world).get("/api/openapi.json").status_code == 401  # tablet.openapi: signed_in
    schema = client_for(world, "olivia").get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert "/api/alerts/{alert_id}/adjudication" in paths
    assert "/api/deployments/overview" in paths
    assert not {"/login", "/logout", "/alerts", "/deployments", "/"} & paths
    assert client_for(world).get("/docs").status_code == 404  # it would load a CDN script


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidInput, 422),
        (errors.InvalidCrop, 422),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.AlreadyAdjudicated, 409),
        (errors.StaleUpdate, 409),
        (errors.Unauthenticated, 401),
        (errors.PermissionDenied, 403),
        (errors.Throttled, 429),
        (errors.StoreUnavailable, 503),
    ],
)
def test_domain_errors_map_to_http_status(error, status):
    made = error("x", retry_after_seconds=1) if error is errors.Throttled else error("x")
    assert status_for(made) == status


def test_store_outage_is_503(world):
    olivia = client_for(world, "olivia")

    def broken(*args, **kwargs):
        raise errors.StoreUnavailable("database unreachable")

    world.services.views.cards = broken  # a hand-made failure of the store, not a mock of behaviour
    response = olivia.get("/api/alerts")
    assert response.status_code == 503
    assert response.json()["detail"] == "database unreachable"


def test_short_session_secret_is_refused(world):
    with pytest.raises(errors.InvalidInput):
        create_tablet_app(world.services, world.feed, world.clock, TabletSettings(), SECRET[:8])


def audit_actions(world) -> list[tuple[str, str, dict]]:
    with world.store() as uow:
        return [(r.action, r.actor, r.details) for r in uow.audit.records()]


def test_only_a_supervisor_amends_a_decision_and_the_reason_is_audited(world):
    alert_id = world.observe(0).alert_id
    officer, supervisor = client_for(world, "olivia"), client_for(world, "sam")
    decided = officer.post(
        f"/api/alerts/{alert_id}/adjudication", json={"outcome": "confirmed", "expected_version": 1}
    ).json()
    body = {"outcome": "false_alert", "reason": "CCTV review: a different man", "expected_version": 2}
    assert officer.post(f"/api/alerts/{alert_id}/amendment", json=body).status_code == 403
    assert (
        supervisor.post(f"/api/alerts/{alert_id}/amendment", json={**body, "reason": ""}).status_code == 422
    )
    amended = supervisor.post(f"/api/alerts/{alert_id}/amendment", json=body)
    assert amended.status_code == 200, amended.text
    out = amended.json()
    assert (out["outcome"], out["adjudicated_by"], out["amended_by"]) == ("false_alert", "olivia", "sam")
    assert out["amendment_reason"] == "CCTV review: a different man"
    assert out["revision"] > decided["revision"]
    [(_, actor, details)] = [a for a in audit_actions(world) if a[0] == "alert.amended"]
    assert actor == "sam"
    assert details["previous_outcome"] == "confirmed"
    assert details["reason"] == "CCTV review: a different man"
    stale = supervisor.post(f"/api/alerts/{alert_id}/amendment", json=body)
    assert stale.status_code == 409


def test_an_open_alert_cannot_be_amended(world):
    alert_id = world.observe(0).alert_id
    body = {"outcome": "false_alert", "reason": "no", "expected_version": 1}
    assert client_for(world, "sam").post(f"/api/alerts/{alert_id}/amendment", json=body).status_code == 409


def test_a_supervisor_closes_a_window_now_with_an_audited_reason_and_the_matcher_disarms(world):
    officer, supervisor = client_for(world, "olivia"), client_for(world, "sam")
    path = f"/api/deployments/{world.window.id}/close"
    assert officer.post(path, json={"reason": "done"}).status_code == 403
    assert supervisor.post(path, json={"reason": ""}).status_code == 422
    closed = supervisor.post(path, json={"reason": "suspect detained"})
    assert closed.status_code == 200, closed.text
    assert (closed.json()["state"], closed.json()["armed"]) == ("closed", False)
    assert ("window.closed", "sam", {"reason": "suspect detained"}) in audit_actions(world)
    assert world.observe(0).alert_id is None  # disarmed at once, through the composition root's hook
    assert supervisor.post(path, json={"reason": "again"}).status_code == 409


def test_authorising_from_the_tablet_shows_the_equity_gates_verdict_and_reasons(world):
    supervisor = client_for(world, "sam")
    spec = WindowSpec(
        "second shift",
        "PACE s.1",
        "High Street south",
        frozenset({"cam-3"}),
        world.window.watchlist_id,
        0.8,
        START,
        START + timedelta(hours=1),
    )
    pending = world.services.deployments.create(spec, SUPERVISOR)
    assert client_for(world, "olivia").post(f"/api/deployments/{pending.id}/authorise").status_code == 403
    reply = supervisor.post(f"/api/deployments/{pending.id}/authorise")
    assert reply.status_code == 200, reply.text
    assert reply.json()["window"]["state"] == "authorised"
    verdict = reply.json()["verdict"]  # the equity gate's own words, whatever its policy decided
    assert verdict["outcome"] == "insufficient evidence"
    assert any("no recorded demographic evaluation" in reason for reason in verdict["reasons"])
    assert verdict["policy_warnings"] == []
    before = supervisor.get(f"/api/deployments/{world.window.id}/equity")
    assert before.json()["outcome"] == "insufficient evidence"
    assert client_for(world, "olivia").get(f"/api/deployments/{world.window.id}/equity").status_code == 403
    assert supervisor.post(f"/api/deployments/{pending.id}/authorise").status_code == 409


def test_the_audit_view_reports_the_chain_verification(world):
    world.observe(0)
    check = client_for(world, "aud").get("/api/audit/verification").json()
    assert check["ok"] is True
    assert check["records_checked"] >= 3
    assert client_for(world, "olivia").get("/api/audit/verification").status_code == 403


def test_each_alert_explains_its_score_in_words(world):
    world.observe(0)
    [alert] = client_for(world, "olivia").get("/api/alerts").json()["alerts"]
    assert f"{alert['score']:.2f} against 0.80" in alert["score_words"]
    assert "not the chance" in alert["score_words"]


def test_one_card_per_passage_counts_its_sightings(world):
    """Issue 10: later faces of the same track update the officer's one card: how many, from when to when."""
    first = world.observe(0, track="walker").alert_id
    world.clock.advance(timedelta(seconds=3))
    again = world.observe(0, track="walker").alert_id
    assert again == first
    (card,) = client_for(world, "olivia").get("/api/alerts").json()["alerts"]
    assert card["id"] == first
    assert card["sightings"] == 2
    seen = datetime.fromisoformat(card["last_seen_at"]) - datetime.fromisoformat(card["first_seen_at"])
    assert seen == timedelta(seconds=3)
