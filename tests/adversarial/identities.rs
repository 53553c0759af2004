//! SPIFFE IDs that are not what they look like — a homoglyph or Unicode,
//! upper case, `..` or `%2e%2e` path segments, userinfo, another trust
//! domain, the CA's own namespace — sent by an admin when creating a join
//! token, revoking an identity, or lifting a ban; and what a token may bind
//! or a revocation may say besides (the CA's own host name, a wildcard, a
//! reason that would undo a revocation). The CA parses IDs strictly and
//! never normalises one into another: each is refused, and the identity it
//! might have been normalised into (a live victim, a banned identity) is
//! untouched.

use http::Method;
use serde_json::json;
use sigil::client::Response;

use crate::common::*;
use crate::support::*;

/// An agent with a live certificate that a normalised ID would revoke.
const VICTIM: &str = "spiffe://example.org/agents/victim";
/// A banned identity that a normalised ID would un-ban.
const BANNED: &str = "spiffe://example.org/agents/banned";

/// Starts a CA with a live [`VICTIM`] and a banned [`BANNED`], runs
/// `attack` (given the victim's SVID) as the admin, and asserts the refusal and that nothing changed.
fn refused(attack: impl FnOnce(&Server, &Agent) -> Response, status: u16, code: &str) {
    let dir = DataDir::init();
    let server = dir.start();
    let victim = attest(&server, VICTIM);
    let _doomed = attest(&server, BANNED);
    ban(&server, BANNED);
    let before = Snapshot::take(&dir);
    let response = attack(&server, &victim);
    assert_error(&response, status, code);
    before.assert_unchanged(&dir, server);
}

fn create_token(server: &Server, spiffe_id: &str) -> Response {
    admin_post(
        server,
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": spiffe_id, "uses": 10}),
    )
}

fn revoke_identity(server: &Server, spiffe_id: &str) -> Response {
    admin_post(
        server,
        "/admin/v1/revocations",
        &json!({"spiffe_id": spiffe_id, "reason": "keyCompromise"}),
    )
}

fn lift_ban(server: &Server, path: &str) -> Response {
    send(&server.admin(), Method::DELETE, path, None, Vec::new())
}

// Creating a join token.

#[test]
fn join_token_for_a_homoglyph_trust_domain_is_refused() {
    // A Cyrillic 'а' (U+0430) in place of the Latin 'a'.
    refused(
        |server, _| create_token(server, "spiffe://ex\u{430}mple.org/agents/target"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_for_a_unicode_path_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://example.org/agents/t\u{e4}rget\u{200b}"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_for_an_upper_case_trust_domain_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://EXAMPLE.ORG/agents/target"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_with_dot_dot_in_the_path_is_refused_not_normalised() {
    // Normalised, it would be reserved (403); it is refused as malformed.
    refused(
        |server, _| create_token(server, "spiffe://example.org/agents/../sigil/admin/evil"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_with_percent_encoded_dot_dot_is_refused() {
    refused(
        |server, _| {
            create_token(
                server,
                "spiffe://example.org/agents/%2e%2e/sigil/admin/evil",
            )
        },
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_for_another_trust_domain_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://evil.org/agents/target"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_for_a_trust_domain_hidden_behind_userinfo_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://example.org@evil.org/agents/target"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_for_the_cas_own_namespace_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://example.org/sigil/admin/evil"),
        403,
        "reserved_identity",
    );
}

#[test]
fn join_token_for_the_trust_domain_itself_is_refused() {
    refused(
        |server, _| create_token(server, "spiffe://example.org"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn join_token_binding_the_cas_own_host_name_is_refused() {
    // A workload certified for `localhost` could pass for the CA.
    refused(
        |server, _| {
            admin_post(
                server,
                "/admin/v1/join-tokens",
                &json!({"spiffe_id": "spiffe://example.org/agents/web", "dns_names": ["localhost"]}),
            )
        },
        400,
        "invalid_request",
    );
}

#[test]
fn join_token_binding_a_wildcard_dns_name_is_refused() {
    refused(
        |server, _| {
            admin_post(
                server,
                "/admin/v1/join-tokens",
                &json!({"spiffe_id": "spiffe://example.org/agents/web", "dns_names": ["*.example.org"]}),
            )
        },
        400,
        "invalid_request",
    );
}

// Revoking (and banning) an identity.

#[test]
fn revocation_reason_remove_from_crl_is_refused() {
    // A CRL entry with reason removeFromCRL un-revokes in delta CRLs; Sigil
    // revocations are permanent.
    refused(
        |server, victim| {
            admin_post(
                server,
                "/admin/v1/revocations",
                &json!({"serial": victim.serial, "reason": "removeFromCRL"}),
            )
        },
        400,
        "invalid_request",
    );
}

#[test]
fn revocation_reason_certificate_hold_is_refused() {
    refused(
        |server, victim| {
            admin_post(
                server,
                "/admin/v1/revocations",
                &json!({"serial": victim.serial, "reason": "certificateHold"}),
            )
        },
        400,
        "invalid_request",
    );
}

#[test]
fn revocation_of_a_unicode_id_is_refused() {
    refused(
        |server, _| revoke_identity(server, "spiffe://example.org/agents/v\u{ed}ctim"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn revocation_with_dot_dot_in_the_path_is_refused_not_normalised() {
    refused(
        |server, _| revoke_identity(server, "spiffe://example.org/agents/decoy/../victim"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn revocation_with_percent_encoded_dot_dot_is_refused() {
    refused(
        |server, _| revoke_identity(server, "spiffe://example.org/agents/decoy/%2e%2e/victim"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn revocation_of_another_trust_domain_is_refused() {
    refused(
        |server, _| revoke_identity(server, "spiffe://evil.org/agents/victim"),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn ban_of_the_cas_own_server_identity_is_refused() {
    // It would take the CA's TLS certificate down with it.
    refused(
        |server, _| revoke_identity(server, "spiffe://example.org/sigil/server"),
        403,
        "reserved_identity",
    );
}

// Lifting a ban: the ID is one URL-encoded path segment.

#[test]
fn lifting_a_ban_with_dot_dot_in_the_id_is_refused_not_normalised() {
    refused(
        |server, _| {
            lift_ban(
                server,
                &ban_path("spiffe://example.org/agents/decoy/../banned"),
            )
        },
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn lifting_a_ban_with_percent_encoded_dot_dot_is_refused() {
    // `%2e%2e` decodes to `..` once the path segment is decoded.
    refused(
        |server, _| {
            lift_ban(
                server,
                "/admin/v1/bans/spiffe%3A%2F%2Fexample.org%2Fagents%2Fdecoy%2F%2e%2e%2Fbanned",
            )
        },
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn lifting_a_ban_with_double_encoded_dot_dot_is_refused() {
    // `%252e%252e` decodes once, to `%2e%2e`, and is never decoded again.
    refused(
        |server, _| {
            lift_ban(
                server,
                "/admin/v1/bans/spiffe%3A%2F%2Fexample.org%2Fagents%2Fdecoy%2F%252e%252e%2Fbanned",
            )
        },
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn lifting_a_ban_of_a_unicode_id_is_refused() {
    refused(
        |server, _| lift_ban(server, &ban_path("spiffe://example.org/agents/b\u{e4}nned")),
        400,
        "invalid_spiffe_id",
    );
}

#[test]
fn dot_segments_in_the_url_are_not_resolved_into_another_route() {
    // `/admin/v1/bans/../revocations` is no route; it is not read as
    // `/admin/v1/revocations`.
    refused(
        |server, _| lift_ban(server, "/admin/v1/bans/../revocations"),
        404,
        "not_found",
    );
}
