//! CA keys encrypted at rest with a passphrase.
//!
//! The format is the standard one, so that other tools read it: PKCS#8
//! `EncryptedPrivateKeyInfo` (RFC 5958) in a PEM block labelled
//! `ENCRYPTED PRIVATE KEY`, encrypted with PBES2 (RFC 8018) using the scrypt
//! KDF (RFC 7914; N = 2^14, r = 8, p = 1, a 16-byte random salt) and
//! AES-256-CBC. `openssl pkey -in root.key -passin file:FILE` reads it, and
//! keys that `openssl pkcs8 -topk8 -v2 aes-256-cbc` (PBKDF2) writes are
//! read too. The cryptography is RustCrypto's `pkcs8`/`pkcs5`, not ours.

use std::fmt;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::{self, pbes2, scrypt};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo, SecretDocument};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::datadir;

/// The environment variable that may hold the passphrase itself.
pub const PASSPHRASE_ENV: &str = "SIGIL_CA_PASSPHRASE";

/// The PEM label of an encrypted key.
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
/// The PEM label of a plain PKCS#8 key.
const PLAIN_LABEL: &str = "PRIVATE KEY";

/// scrypt's cost, as `openssl pkcs8 -scrypt` chooses it: N = 2^14, r = 8,
/// p = 1, i.e. 16 MiB and a few tens of milliseconds per key, once at
/// start-up. N = 2^15 would need just over the 32 MiB that OpenSSL allows
/// by default, and OpenSSL could then no longer read the keys.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// The passphrase that protects the CA keys. Wiped from memory when
/// dropped, and redacted in `Debug`.
pub struct Passphrase(Zeroizing<String>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// A passphrase from its text: the first line, as `openssl -passin
    /// file:` reads it.
    ///
    /// # Errors
    ///
    /// The passphrase is empty.
    pub fn new(text: &str) -> anyhow::Result<Self> {
        let line = text.split('\n').next().unwrap_or_default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            bail!("the CA passphrase is empty");
        }
        Ok(Self(Zeroizing::new(line.to_owned())))
    }

    /// The passphrase in the first line of `path`, a file only its owner
    /// may read.
    ///
    /// # Errors
    ///
    /// The file cannot be read, others may read it, or the passphrase is
    /// empty.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(datadir::read_secret(path)?);
        Self::new(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// The passphrase from `file` if given, else from the environment
    /// variable [`PASSPHRASE_ENV`], else none.
    ///
    /// # Errors
    ///
    /// The file cannot be read or either passphrase is empty.
    pub fn from_file_or_env(file: Option<&Path>) -> anyhow::Result<Option<Self>> {
        if let Some(path) = file {
            return Self::from_file(path).map(Some);
        }
        match std::env::var(PASSPHRASE_ENV) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::new(&text)
                    .with_context(|| format!("reading {PASSPHRASE_ENV}"))
                    .map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("{PASSPHRASE_ENV} is not UTF-8")
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Whether a key file's text is an encrypted PKCS#8 key.
pub(super) fn is_encrypted(key_pem: &str) -> bool {
    key_pem
        .trim_start()
        .starts_with(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))
}

/// Encrypts a PKCS#8 private key (PEM) with `passphrase`.
///
/// # Errors
///
/// The key is not a PKCS#8 PEM, or the random source failed.
pub(super) fn encrypt(key_pem: &str, passphrase: &Passphrase) -> anyhow::Result<Zeroizing<String>> {
    let (label, der) =
        SecretDocument::from_pem(key_pem).map_err(|e| anyhow!("reading the key: {e}"))?;
    if label != PLAIN_LABEL {
        bail!("the key is a {label}, not a PKCS#8 {PLAIN_LABEL}");
    }
    let info =
        PrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| anyhow!("reading the key: {e}"))?;
    let random = SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    random
        .fill(&mut salt)
        .and_then(|()| random.fill(&mut iv))
        .map_err(|_| anyhow!("the random source failed"))?;
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| anyhow!("scrypt parameters: {e}"))?;
    let parameters = pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv)
        .map_err(|e| anyhow!("PBES2 parameters: {e}"))?;
    let encrypted = info
        .encrypt_with_params(parameters, passphrase.as_bytes())
        .map_err(|e| anyhow!("encrypting the key: {e}"))?;
    encrypted
        .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| anyhow!("encoding the key: {e}"))
}

/// Decrypts an encrypted PKCS#8 private key (PEM) into a plain PKCS#8 PEM.
///
/// # Errors
///
/// The text is not an encrypted PKCS#8 key, or the passphrase is wrong.
pub(super) fn decrypt(key_pem: &str, passphrase: &Passphrase) -> anyhow::Result<Zeroizing<String>> {
    let (label, der) =
        SecretDocument::from_pem(key_pem).map_err(|e| anyhow!("reading the key: {e}"))?;
    if label != ENCRYPTED_LABEL {
        bail!("the key is a {label}, not an {ENCRYPTED_LABEL}");
    }
    let info = EncryptedPrivateKeyInfo::try_from(der.as_bytes())
        .map_err(|e| anyhow!("reading the encrypted key: {e}"))?;
    let plain = info.decrypt(passphrase.as_bytes()).map_err(|e| match e {
        // pkcs5 0.7 reports a padding failure, what a wrong passphrase
        // gives, as `EncryptFailed`.
        pkcs8::Error::EncryptedPrivateKey(
            pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
        ) => anyhow!("the passphrase is wrong, or the key file is damaged"),
        // About one wrong passphrase in 256 decrypts to valid padding by
        // chance; pkcs8 then finds the bytes are not DER.
        pkcs8::Error::Asn1(_) => anyhow!("the passphrase is wrong, or the key file is damaged"),
        // An unsupported scheme (e.g. PBES1) or broken parameters.
        other => anyhow!("decrypting the key: {other}"),
    })?;
    // A wrong passphrase can decrypt to valid padding by chance; what comes
    // out must then still be a key.
    PrivateKeyInfo::try_from(plain.as_bytes())
        .map_err(|_| anyhow!("the passphrase is wrong, or the key file is damaged"))?;
    plain
        .to_pem(PLAIN_LABEL, LineEnding::LF)
        .map_err(|e| anyhow!("encoding the key: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ca::KeyType;

    fn key_pem() -> String {
        KeyType::P256.generate().unwrap().serialize_pem()
    }

    #[test]
    fn a_key_encrypts_and_decrypts_back_to_itself() {
        let key = key_pem();
        let passphrase = Passphrase::new("correct horse battery staple").unwrap();
        let sealed = encrypt(&key, &passphrase).unwrap();
        assert!(is_encrypted(&sealed));
        assert!(!is_encrypted(&key));
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!sealed.contains(&body[..40]), "the key shows through");
        assert_eq!(*decrypt(&sealed, &passphrase).unwrap(), key);
    }

    #[test]
    fn a_wrong_passphrase_is_refused_and_says_so() {
        let sealed = encrypt(&key_pem(), &Passphrase::new("right").unwrap()).unwrap();
        let error = decrypt(&sealed, &Passphrase::new("wrong").unwrap()).unwrap_err();
        assert!(error.to_string().contains("passphrase is wrong"), "{error}");
    }

    #[test]
    fn two_encryptions_of_one_key_differ_by_their_salt() {
        let key = key_pem();
        let passphrase = Passphrase::new("p").unwrap();
        assert_ne!(
            *encrypt(&key, &passphrase).unwrap(),
            *encrypt(&key, &passphrase).unwrap()
        );
    }

    #[test]
    fn the_passphrase_is_the_first_line_and_never_empty_nor_printed() {
        let passphrase = Passphrase::new("secret words\r\nsecond line\n").unwrap();
        assert_eq!(passphrase.as_bytes(), b"secret words");
        assert_eq!(format!("{passphrase:?}"), "Passphrase(<redacted>)");
        assert!(Passphrase::new("\nsecret").is_err());
        assert!(Passphrase::new("").is_err());
    }
}
