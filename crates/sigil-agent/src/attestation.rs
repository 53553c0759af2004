//! How an agent proves what it is when it has no SVID yet.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use sigil_core::wire::{Attestation, Secret};
use tokio::io::AsyncReadExt;

use crate::Error;

/// A boxed future, as trait objects need.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Produces the attestation sent with the first CSR. Join tokens
/// ([`JoinToken`]) and JWTs read from a file ([`JwtFile`]) are built in;
/// other kinds implement this.
pub trait Attestor: Send + Sync {
    /// The attestation for one issuance request.
    fn attestation(&self) -> BoxFuture<'_, Result<Attestation, Error>>;

    /// Whether the agent may attest again with it when renewal is over
    /// (the SVID expired, or the CA will not renew it): true for a source
    /// the platform keeps fresh, false for a one-time secret.
    fn can_attest_again(&self) -> bool {
        false
    }
}

/// A one-time join token an admin created for this agent's SPIFFE ID.
pub struct JoinToken(Secret);

impl JoinToken {
    /// Wraps the token text (`sigil_jt_…`).
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token.into().trim().to_owned()))
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

impl Attestor for JoinToken {
    fn attestation(&self) -> BoxFuture<'_, Result<Attestation, Error>> {
        let attestation = Attestation::JoinToken {
            token: self.0.clone(),
        };
        Box::pin(async move { Ok(attestation) })
    }
}

/// The largest JWT file read, in bytes. Platform tokens are a few KiB; a
/// larger file is not a token.
const MAX_JWT_FILE: u64 = 64 * 1024;

/// A JWT the platform keeps in a file (a Kubernetes projected
/// service-account token, a CI OIDC token), judged by the CA's attestor of
/// that name.
///
/// The file is read afresh at each attestation, because platforms rotate
/// these tokens. Surrounding whitespace is ignored. The token is never
/// kept, logged or shown: `Debug` shows the attestor and the path only.
///
/// An agent attests only when it has no valid SVID; afterwards it renews
/// over mTLS. Kubernetes reuses a pod's token until it rotates, so a
/// second attestation with the same token is not something to rely on.
#[derive(Debug, Clone)]
pub struct JwtFile {
    attestor: String,
    path: PathBuf,
}

impl JwtFile {
    /// The JWT in `path`, for the CA's attestor named `attestor`.
    pub fn new(attestor: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            attestor: attestor.into(),
            path: path.into(),
        }
    }

    /// The name of the CA's attestor.
    pub fn attestor(&self) -> &str {
        &self.attestor
    }

    /// The file that holds the JWT.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token in the file now, trimmed.
    async fn read(&self) -> Result<Secret, Error> {
        let io_error = |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(&self.path).await.map_err(io_error)?;
        // Read at most one byte past the limit, whatever the file is.
        let mut bytes = Vec::new();
        file.take(MAX_JWT_FILE + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(io_error)?;
        if bytes.len() as u64 > MAX_JWT_FILE {
            return Err(Error::NoIdentity(format!(
                "the JWT file {} is larger than {} KiB: it does not hold a token",
                self.path.display(),
                MAX_JWT_FILE / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            io_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the JWT file is not UTF-8 text",
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Error::NoIdentity(format!(
                "the JWT file {} is empty: there is no token to attest with",
                self.path.display()
            )));
        }
        Ok(Secret::new(token))
    }
}

impl Attestor for JwtFile {
    fn can_attest_again(&self) -> bool {
        true
    }

    fn attestation(&self) -> BoxFuture<'_, Result<Attestation, Error>> {
        Box::pin(async move {
            Ok(Attestation::Jwt {
                attestor: self.attestor.clone(),
                token: self.read().await?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const TOKEN_A: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnLWE";
    const TOKEN_B: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2lnLWI";

    /// The attestor name and the token of a JWT attestation.
    async fn attest(jwt: &JwtFile) -> Result<(String, String), Error> {
        match jwt.attestation().await? {
            Attestation::Jwt { attestor, token } => Ok((attestor, token.expose().to_owned())),
            other => panic!("not a JWT attestation: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_file_is_read_again_at_each_attestation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let jwt = JwtFile::new("k8s", &path);
        std::fs::write(&path, TOKEN_A).unwrap();
        assert_eq!(
            attest(&jwt).await.unwrap(),
            ("k8s".to_owned(), TOKEN_A.to_owned())
        );
        std::fs::write(&path, TOKEN_B).unwrap();
        assert_eq!(
            attest(&jwt).await.unwrap(),
            ("k8s".to_owned(), TOKEN_B.to_owned())
        );
    }

    #[tokio::test]
    async fn surrounding_whitespace_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!(" \n\t{TOKEN_A}\r\n\n")).unwrap();
        let (_, token) = attest(&JwtFile::new("ci", &path)).await.unwrap();
        assert_eq!(token, TOKEN_A);
    }

    #[tokio::test]
    async fn an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for content in ["", " \n\t\r\n"] {
            std::fs::write(&path, content).unwrap();
            let error = attest(&JwtFile::new("k8s", &path)).await.unwrap_err();
            assert!(matches!(error, Error::NoIdentity(_)), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("empty"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[tokio::test]
    async fn a_file_over_64_kib_is_refused_and_one_at_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let jwt = JwtFile::new("k8s", &path);
        let limit = usize::try_from(MAX_JWT_FILE).unwrap();
        std::fs::write(&path, "a".repeat(limit + 1)).unwrap();
        let error = attest(&jwt).await.unwrap_err();
        assert!(matches!(error, Error::NoIdentity(_)), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("64 KiB"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        // The message never quotes the file.
        assert!(!message.contains("aaaa"), "{message}");

        std::fs::write(&path, "a".repeat(limit)).unwrap();
        let (_, token) = attest(&jwt).await.unwrap();
        assert_eq!(token.len(), limit);
    }

    #[tokio::test]
    async fn a_missing_file_is_an_io_error_that_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-token");
        let error = attest(&JwtFile::new("k8s", &path)).await.unwrap_err();
        match &error {
            Error::Io {
                path: named,
                source,
            } => {
                assert_eq!(named, &path.display().to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("not an I/O error: {other:?}"),
        }
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[tokio::test]
    async fn a_file_that_is_not_text_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
        let error = attest(&JwtFile::new("k8s", &path)).await.unwrap_err();
        assert!(
            matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn debug_shows_the_attestor_and_path_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, TOKEN_A).unwrap();
        let jwt = JwtFile::new("k8s-prod", &path);
        let attestation = jwt.attestation().await.unwrap();
        for shown in [format!("{jwt:?}"), format!("{jwt:#?}")] {
            assert!(shown.contains("k8s-prod"), "{shown}");
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(!shown.contains(TOKEN_A), "{shown}");
        }
        let shown = format!("{attestation:?}");
        assert!(shown.contains("k8s-prod"), "{shown}");
        assert!(!shown.contains(TOKEN_A), "{shown}");
    }

    #[tokio::test]
    async fn a_join_token_is_trimmed_and_redacted() {
        let token = JoinToken::new(" sigil_jt_secret\n");
        assert!(!format!("{token:?}").contains("sigil_jt_secret"));
        match token.attestation().await.unwrap() {
            Attestation::JoinToken { token } => assert_eq!(token.expose(), "sigil_jt_secret"),
            other => panic!("not a join token: {other:?}"),
        }
    }
}
