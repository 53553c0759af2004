//! The admin API attacked by callers that are not admins: every admin
//! route called with an agent's SVID (403 `forbidden`) and with no client
//! certificate (401 `client_certificate_required`), and the join-token
//! route with admin certificates that are self-signed, minted with the
//! issuing key but never issued, from another CA, or revoked. Each would
//! change (or read) something if it went through: a token for a new
//! identity, a victim's revocation, a lifted ban, the certificate list,
//! the audit log; none does, and no refusal leaks what it guards.

use http::Method;
use serde_json::json;
use sigil::client::{CaClient, Response};

use crate::common::*;
use crate::support::*;

const ATTACKER: &str = "spiffe://example.org/agents/attacker";
const VICTIM: &str = "spiffe://example.org/agents/victim";
const BANNED: &str = "spiffe://example.org/agents/banned";

/// The admin routes.
#[derive(Debug, Clone, Copy)]
enum Route {
    JoinTokens,
    Revocations,
    Bans,
    Certificates,
    Audit,
}

/// Calls `route` as `client`, with a request that an admin would get
/// answered.
fn call(client: &CaClient, route: Route) -> Response {
    match route {
        Route::JoinTokens => block_on(client.post_json(
            "/admin/v1/join-tokens",
            &json!({"spiffe_id": "spiffe://example.org/agents/escalated", "uses": 10_000}),
        )),
        Route::Revocations => block_on(client.post_json(
            "/admin/v1/revocations",
            &json!({"spiffe_id": VICTIM, "reason": "keyCompromise"}),
        )),
        Route::Bans => {
            block_on(client.request(Method::DELETE, &ban_path(BANNED), None, Vec::new()))
        }
        Route::Certificates => block_on(client.get("/admin/v1/certificates?status=all&limit=1000")),
        Route::Audit => block_on(client.get("/admin/v1/audit?limit=1000")),
    }
    .unwrap()
}

/// A CA with an attacking agent, a live victim and a banned identity.
struct Fixture {
    dir: DataDir,
    server: Server,
    attacker: Agent,
    victim: Agent,
}

fn fixture() -> Fixture {
    let dir = DataDir::init();
    let server = dir.start();
    let attacker = attest(&server, ATTACKER);
    let victim = attest(&server, VICTIM);
    let _doomed = attest(&server, BANNED);
    ban(&server, BANNED);
    Fixture {
        dir,
        server,
        attacker,
        victim,
    }
}

/// Calls `route` as the client `caller` makes, and asserts the refusal,
/// that it reveals nothing, and that nothing changed but the audit log's
/// count of the refusal: who probed the admin API, or with what.
fn refused(caller: impl FnOnce(&Fixture) -> CaClient, route: Route, status: u16, code: &str) {
    let fixture = fixture();
    let client = caller(&fixture);
    let before = Snapshot::take(&fixture.dir);
    let response = call(&client, route);
    assert_error(&response, status, code);
    let body = body_text(&response);
    for secret in [fixture.victim.serial.as_str(), VICTIM, "token.create"] {
        assert!(!body.contains(secret), "{route:?} leaked {secret}: {body}");
    }
    let Fixture { dir, server, .. } = fixture;
    let reason = match code {
        "forbidden" => format!("admin route called by {ATTACKER}"),
        _ => format!("admin route: {code}"),
    };
    before.assert_unchanged_except_refusals(&dir, server, &[(&reason, 1)]);
}

fn as_agent(fixture: &Fixture) -> CaClient {
    fixture.attacker.client(&fixture.server)
}

fn as_nobody(fixture: &Fixture) -> CaClient {
    fixture.server.anonymous()
}

#[test]
fn agent_svid_cannot_create_join_tokens() {
    refused(as_agent, Route::JoinTokens, 403, "forbidden");
}

#[test]
fn agent_svid_cannot_revoke() {
    refused(as_agent, Route::Revocations, 403, "forbidden");
}

#[test]
fn agent_svid_cannot_lift_a_ban() {
    refused(as_agent, Route::Bans, 403, "forbidden");
}

#[test]
fn agent_svid_cannot_list_certificates() {
    refused(as_agent, Route::Certificates, 403, "forbidden");
}

#[test]
fn agent_svid_cannot_read_the_audit_log() {
    refused(as_agent, Route::Audit, 403, "forbidden");
}

#[test]
fn no_client_certificate_cannot_create_join_tokens() {
    refused(
        as_nobody,
        Route::JoinTokens,
        401,
        "client_certificate_required",
    );
}

#[test]
fn no_client_certificate_cannot_revoke() {
    refused(
        as_nobody,
        Route::Revocations,
        401,
        "client_certificate_required",
    );
}

#[test]
fn no_client_certificate_cannot_lift_a_ban() {
    refused(as_nobody, Route::Bans, 401, "client_certificate_required");
}

#[test]
fn no_client_certificate_cannot_list_certificates() {
    refused(
        as_nobody,
        Route::Certificates,
        401,
        "client_certificate_required",
    );
}

#[test]
fn no_client_certificate_cannot_read_the_audit_log() {
    refused(as_nobody, Route::Audit, 401, "client_certificate_required");
}

#[test]
fn self_signed_admin_certificate_is_refused() {
    refused(
        |fixture| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::default();
            params.subject_alt_names = vec![rcgen::SanType::URI(
                "spiffe://example.org/sigil/admin/admin".try_into().unwrap(),
            )];
            let cert = params.self_signed(&key).unwrap().pem();
            fixture.server.client_as(&cert, &key.serialize_pem())
        },
        Route::JoinTokens,
        401,
        "invalid_client_certificate",
    );
}

#[test]
fn admin_certificate_minted_with_the_issuing_key_but_never_issued_is_refused() {
    refused(
        |fixture| {
            let (chain, key) = mint(
                &fixture.dir.read("ca/issuing.pem"),
                &fixture.dir.read("ca/issuing.key"),
                "spiffe://example.org/sigil/admin/admin",
                false,
            );
            fixture.server.client_as(&chain, &key)
        },
        Route::JoinTokens,
        401,
        "invalid_client_certificate",
    );
}

#[test]
fn admin_credential_of_a_foreign_ca_of_the_same_trust_domain_is_refused() {
    refused(
        |fixture| {
            let foreign = DataDir::init();
            fixture.server.client_as(
                &foreign.read("admin/svid.pem"),
                &foreign.read("admin/svid.key"),
            )
        },
        Route::JoinTokens,
        401,
        "invalid_client_certificate",
    );
}

#[test]
fn revoked_admin_credential_is_refused() {
    refused(
        |fixture| {
            let (chain, key, _) = fixture.dir.admin_credential("mallory", &[]);
            let revoked = admin_post(
                &fixture.server,
                "/admin/v1/revocations",
                &json!({"serial": serial_of(&chain), "reason": "keyCompromise"}),
            );
            assert_eq!(revoked.status, 200, "{}", body_text(&revoked));
            fixture.server.client_as(&chain, &key)
        },
        Route::JoinTokens,
        403,
        "revoked",
    );
}
