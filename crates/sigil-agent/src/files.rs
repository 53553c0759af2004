//! The files `sigil agent --out DIR` keeps current for programs that read
//! files: `svid.pem` (leaf and chain), `svid.key` (0600), `bundle.pem` and
//! `crls.pem`. Each is replaced atomically (a temporary file in the same
//! directory, synced, then renamed), so a reader never sees half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::Error;
use crate::svid::Svid;

/// The certificate chain file.
pub const SVID_FILE: &str = "svid.pem";
/// The private key file (mode 0600).
pub const KEY_FILE: &str = "svid.key";
/// The trust bundle file.
pub const BUNDLE_FILE: &str = "bundle.pem";
/// The CRL file.
pub const CRLS_FILE: &str = "crls.pem";

/// Bytes written by [`SvidFiles::check_writable`]: more than a key and a
/// chain take.
const PROBE_SIZE: usize = 16 * 1024;

/// A directory holding an agent's SVID, key, bundle and CRLs.
#[derive(Debug, Clone)]
pub struct SvidFiles {
    dir: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl SvidFiles {
    /// Files in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SVID and key stored here, if both files exist. An expired one is
    /// returned too: the caller decides.
    ///
    /// # Errors
    ///
    /// A file cannot be read, does not parse, or the key does not belong
    /// to the certificate.
    pub fn load(&self) -> Result<Option<Svid>, Error> {
        let chain_path = self.dir.join(SVID_FILE);
        let key_path = self.dir.join(KEY_FILE);
        if !chain_path.exists() || !key_path.exists() {
            return Ok(None);
        }
        let chain = std::fs::read_to_string(&chain_path).map_err(io_error(&chain_path))?;
        let key = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        Svid::new(chain, key, SystemTime::now()).map(Some)
    }

    /// Checks that the directory takes a write of an SVID's size, before a
    /// request whose answer must be kept is sent.
    ///
    /// # Errors
    ///
    /// The directory cannot be created or written (full, read-only).
    pub fn check_writable(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let probe = self.dir.join(".write-check");
        let result = write_atomically(&probe, &" ".repeat(PROBE_SIZE), 0o600);
        let _ = std::fs::remove_file(&probe);
        result
    }

    /// Writes the key, then the chain, then the bundle and CRLs, each
    /// atomically.
    ///
    /// # Errors
    ///
    /// A file cannot be written.
    pub fn write(&self, svid: &Svid, bundle_pem: &str, crls_pem: &str) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        write_atomically(&self.dir.join(KEY_FILE), svid.private_key_pem(), 0o600)?;
        write_atomically(&self.dir.join(SVID_FILE), svid.chain_pem(), 0o644)?;
        self.write_trust(bundle_pem, crls_pem)
    }

    /// Writes the bundle and CRLs, each atomically.
    ///
    /// # Errors
    ///
    /// A file cannot be written.
    pub fn write_trust(&self, bundle_pem: &str, crls_pem: &str) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        write_atomically(&self.dir.join(BUNDLE_FILE), bundle_pem, 0o644)?;
        write_atomically(&self.dir.join(CRLS_FILE), crls_pem, 0o644)
    }
}

/// Writes `path` through a temporary file in its directory, created with
/// `mode` (so a key is never readable by others, not even briefly).
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io_error(path))
}
