// Run with: cargo fuzz run jwt   (from the repository root)
//
// JWT parsing and verification as `POST /v1/svid` runs them: any text is
// handed to a real attestor (an EdDSA key in a JWKS file, an issuer, an
// audience and a template) and is either attested or refused with a
// reason; never a panic. The seed `fuzz/seeds/jwt/valid-eddsa.jwt` is a
// token this key signed, so mutations reach the claim checks and the
// template.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil::attestation::jwt::JwtAttestor;
use sigil::config::ServerFile;
use sigil::namespace::Namespace;

/// The public half of the key that signed the seed token.
const JWKS: &str = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "fuzz", "alg": "EdDSA",
  "x": "dYrRvDn4eEh_KC53umWah4djbmLWsV2Pn_JR32PAI44"}]}"#;

const CONFIG: &str = r#"
[[attestor.jwt]]
name = "fuzz"
issuer = "https://issuer.example"
jwks = { file = "jwks.json" }
audiences = ["sigil"]
algorithms = ["EdDSA"]
spiffe_id = "spiffe://example.org/fuzz/{/sub}"
"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    attestor: JwtAttestor,
    namespace: Namespace,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("jwks.json"), JWKS).expect("writing the JWKS");
        let file = ServerFile::parse(CONFIG, std::path::Path::new("fuzz.toml"))
            .expect("the fuzz attestor's configuration");
        let namespace = Namespace::new(&"example.org".parse().expect("a trust domain"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let attestor = runtime
            .block_on(JwtAttestor::load(
                &file.attestor.jwt[0],
                dir.path(),
                &namespace,
            ))
            .expect("the fuzz attestor");
        Fixture {
            runtime,
            attestor,
            namespace,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    let _ = fixture.runtime.block_on(fixture.attestor.attest(
        token,
        &fixture.namespace,
        time::OffsetDateTime::now_utc(),
    ));
});
