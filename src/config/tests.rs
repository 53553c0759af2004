#![allow(clippy::unwrap_used)]

use super::*;
use crate::api::RateLimits;
use crate::issuance::TtlPolicy;
use crate::server::ConnectionLimits;
use sigil_core::TrustDomain;

fn parse(text: &str) -> anyhow::Result<ServerFile> {
    ServerFile::parse(text, Path::new("/etc/sigil/sigil.toml"))
}

fn loaded(text: &str) -> LoadedConfig {
    LoadedConfig {
        file: parse(text).unwrap(),
        path: Some(PathBuf::from("/etc/sigil/sigil.toml")),
        dir: PathBuf::from("/etc/sigil"),
    }
}

fn resolve(flags: Overrides, text: &str) -> anyhow::Result<Settings> {
    Settings::resolve(flags, loaded(text))
}

fn message(result: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", result.unwrap_err())
}

#[test]
fn the_commented_example_parses_and_resolves() {
    let text = include_str!("../../docs/sigil.toml");
    let settings = resolve(Overrides::default(), text).unwrap();
    assert_eq!(settings.attestors.jwt.len(), 2);
    assert_eq!(settings.attestors.dir, Path::new("/etc/sigil"));
    assert!(
        settings
            .admins(&"example.org".parse().unwrap())
            .unwrap()
            .is_some()
    );
}

#[test]
fn without_a_file_or_flags_the_defaults_hold() {
    let settings = resolve(Overrides::default(), "").unwrap();
    assert_eq!(settings.listen, DEFAULT_LISTEN);
    assert_eq!(settings.public_url, None);
    let ttl = TtlPolicy::default();
    assert_eq!(
        (settings.ttl.default, settings.ttl.min, settings.ttl.max),
        (ttl.default, ttl.min, ttl.max)
    );
    assert_eq!(settings.crl_ttl, crate::ca::DEFAULT_CRL_VALIDITY);
    assert_eq!(settings.crl_resign, crate::ca::DEFAULT_CRL_VALIDITY / 2);
    let connections = ConnectionLimits::default();
    assert_eq!(settings.connections.total, connections.total);
    assert_eq!(settings.connections.per_ip, connections.per_ip);
    assert_eq!(settings.rate_limits, RateLimits::default());
    assert!(!settings.keys.allow_rsa);
    assert!(settings.admin_ids.is_none());
    assert!(settings.attestors.jwt.is_empty());
}

#[test]
fn flags_win_over_the_file_which_wins_over_the_defaults() {
    let text = r#"
        listen = "0.0.0.0:9443"
        default_ttl = "2m"
        max_ttl = "1h"
        crl_ttl = "10m"
        rate_limit = 5
        renewal_burst = 7
        allow_rsa = true
    "#;
    let flags = Overrides {
        default_ttl: Some("3m".parse().unwrap()),
        renewal_limit: Some(9.0),
        crl_resign: Some("1m".parse().unwrap()),
        ..Overrides::default()
    };
    let settings = resolve(flags, text).unwrap();
    assert_eq!(settings.listen, "0.0.0.0:9443".parse().unwrap());
    assert_eq!(settings.ttl.default, Duration::from_secs(180));
    assert_eq!(settings.ttl.max, Duration::from_secs(3600));
    assert_eq!(settings.ttl.min, TtlPolicy::default().min);
    assert_eq!(settings.crl_ttl, Duration::from_secs(600));
    assert_eq!(settings.crl_resign, Duration::from_secs(60));
    let rates = settings.rate_limits;
    assert!((rates.requests.per_second - 5.0).abs() < f64::EPSILON);
    assert!((rates.renewals.per_second - 9.0).abs() < f64::EPSILON);
    assert!((rates.renewals.burst - 7.0).abs() < f64::EPSILON);
    assert_eq!(
        rates.failed_attestations,
        RateLimits::default().failed_attestations
    );
    assert!(settings.keys.allow_rsa);
}

#[test]
fn unknown_keys_are_named_with_their_line_also_in_attestor_tables() {
    let error = message(parse("listen = \"127.0.0.1:0\"\nlisten_addr = \"x\"\n"));
    assert!(error.contains("/etc/sigil/sigil.toml"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    assert!(error.contains("key `listen_addr`"), "{error}");
    assert!(error.contains("unknown field `listen_addr`"), "{error}");

    let text = "[[attestor.jwt]]\nname = \"k8s\"\nissuer = \"https://k8s\"\n\
                jwks = { file = \"jwks.json\", refresh_rate = \"5m\" }\n";
    let error = message(parse(text));
    assert!(error.contains("line 4"), "{error}");
    assert!(
        error.contains("key `attestor.jwt[0].jwks.refresh_rate`"),
        "{error}"
    );

    let error = message(parse("[attestor]\nspire = []\n"));
    assert!(
        error.contains("line 2") && error.contains("`attestor.spire`"),
        "{error}"
    );
}

#[test]
fn bad_values_name_their_key() {
    for (text, key, line) in [
        ("\n\nmax_ttl = \"forever\"", "max_ttl", 3),
        ("listen = \"nowhere\"", "listen", 1),
        ("max_connections = -1", "max_connections", 1),
        (
            "admin_ids = \"spiffe://example.org/sigil/admin/x\"",
            "admin_ids",
            1,
        ),
        ("allow_rsa = \"yes\"", "allow_rsa", 1),
    ] {
        let error = message(parse(text));
        assert!(error.contains(&format!("key `{key}`")), "{text}: {error}");
        assert!(error.contains(&format!("line {line}")), "{text}: {error}");
    }
}

#[test]
fn out_of_range_values_name_their_origin() {
    let cases: [(&str, Overrides, &str); 10] = [
        (
            "min_ttl = \"2h\"",
            Overrides::default(),
            "min_ttl in /etc/sigil/sigil.toml",
        ),
        (
            "max_ttl = \"60d\"",
            Overrides::default(),
            "maximum TTL must be at most",
        ),
        (
            "crl_ttl = \"30s\"",
            Overrides::default(),
            "crl_ttl in /etc/sigil/sigil.toml: crl_ttl must lie between",
        ),
        (
            "crl_ttl = \"10m\"\ncrl_resign = \"10m\"",
            Overrides::default(),
            "crl_resign in",
        ),
        (
            "crl_resign = \"0s\"",
            Overrides::default(),
            "must be above 0",
        ),
        (
            "max_connections_per_ip = 0",
            Overrides::default(),
            "max_connections_per_ip in",
        ),
        (
            "",
            Overrides {
                rate_limit: Some(0.0),
                ..Overrides::default()
            },
            "--rate-limit",
        ),
        (
            "renewal_burst = 0.5",
            Overrides::default(),
            "renewal_burst in",
        ),
        (
            "issuing_rotate_before = \"1h\"",
            Overrides::default(),
            "at least twice max_ttl",
        ),
        (
            "public_url = \"http://ca\"",
            Overrides::default(),
            "public_url in",
        ),
    ];
    for (text, flags, expected) in cases {
        let error = message(resolve(flags, text));
        assert!(error.contains(expected), "{text}: {error}");
    }
    let flags = Overrides {
        crl_ttl: Some("2m".parse().unwrap()),
        ..Overrides::default()
    };
    let error = message(resolve(flags, "crl_resign = \"5m\""));
    assert!(error.contains("from --crl-ttl"), "{error}");
}

#[test]
fn admin_ids_are_checked_against_the_trust_domain() {
    let td: TrustDomain = "example.org".parse().unwrap();
    let ok = resolve(
        Overrides::default(),
        "admin_ids = [\"spiffe://example.org/sigil/admin/ops/*\"]",
    )
    .unwrap();
    assert!(ok.admins(&td).unwrap().is_some());
    assert!(
        resolve(Overrides::default(), "")
            .unwrap()
            .admins(&td)
            .unwrap()
            .is_none()
    );
    for bad in [
        "admin_ids = [\"spiffe://example.org/agents/*\"]",
        "admin_ids = [\"spiffe://example.org/sigil/server\"]",
        "admin_ids = []",
    ] {
        let settings = resolve(Overrides::default(), bad).unwrap();
        let error = message(settings.admins(&td));
        assert!(
            error.contains("admin_ids in /etc/sigil/sigil.toml"),
            "{error}"
        );
    }
}

#[test]
fn a_missing_default_file_is_fine_and_a_missing_named_one_is_not() {
    let temp = tempfile::tempdir().unwrap();
    let loaded = LoadedConfig::load(None, temp.path()).unwrap();
    assert!(loaded.path.is_none());
    assert_eq!(loaded.dir, temp.path());

    let named = temp.path().join("elsewhere.toml");
    let error = message(LoadedConfig::load(Some(&named), temp.path()));
    assert!(
        error.contains("elsewhere.toml") && error.contains("does not exist"),
        "{error}"
    );

    std::fs::write(&named, "default_ttl = \"5m\"\n").unwrap();
    let loaded = LoadedConfig::load(Some(&named), Path::new("/nonexistent")).unwrap();
    assert_eq!(loaded.dir, temp.path());
    assert_eq!(loaded.path.as_deref(), Some(named.as_path()));
}
