//! The layout of a Sigil data directory, and how files in it are written.
//!
//! ```text
//! DIR/sigil.db             the store (SQLite, WAL)
//! DIR/bundle.pem           trust bundle: every root currently trusted
//! DIR/ca/root.pem          root CA certificate
//! DIR/ca/root.key          root CA private key (0600)
//! DIR/ca/issuing.pem       issuing (intermediate) CA certificate
//! DIR/ca/issuing.key       issuing CA private key (0600)
//! DIR/admin/svid.pem       an admin credential: leaf then issuing CA
//! DIR/admin/svid.key       its private key (0600)
//! DIR/audit/audit.key      Ed25519 key that signs audit checkpoints (0600)
//! DIR/server.url           the URL `sigil serve` listens on, for admin commands
//! DIR/public.url           the URL clients reach the CA by (CRL distribution points)
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A Sigil data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Names the directory; nothing is read or created yet.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The SQLite store.
    pub fn store(&self) -> PathBuf {
        self.root.join("sigil.db")
    }

    /// The trust bundle.
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle.pem")
    }

    /// Where the CA keys and certificates live.
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// The root CA certificate.
    pub fn root_cert(&self) -> PathBuf {
        self.ca_dir().join("root.pem")
    }

    /// The root CA key.
    pub fn root_key(&self) -> PathBuf {
        self.ca_dir().join("root.key")
    }

    /// The issuing CA certificate.
    pub fn issuing_cert(&self) -> PathBuf {
        self.ca_dir().join("issuing.pem")
    }

    /// The issuing CA key.
    pub fn issuing_key(&self) -> PathBuf {
        self.ca_dir().join("issuing.key")
    }

    /// Where retired issuing CAs live, each as `<key id>.pem` and
    /// `<key id>.key`: kept to re-sign their CRLs and to verify their
    /// leaves until the last of those expires.
    pub fn retired_dir(&self) -> PathBuf {
        self.ca_dir().join("retired")
    }

    /// Where `sigil init` puts the first admin credential.
    pub fn admin_dir(&self) -> PathBuf {
        self.root.join("admin")
    }

    /// The key that signs audit-log checkpoints.
    pub fn audit_key(&self) -> PathBuf {
        self.root.join("audit").join("audit.key")
    }

    /// The URL the running server recorded.
    pub fn server_url(&self) -> PathBuf {
        self.root.join("server.url")
    }

    /// The public URL the running server recorded (what leaves name for
    /// their CRL).
    pub fn public_url(&self) -> PathBuf {
        self.root.join("public.url")
    }

    /// Refuses a directory that exists and has content; creates a missing one.
    ///
    /// # Errors
    ///
    /// The directory has content, is not a directory, or cannot be created.
    pub fn create_empty(&self) -> anyhow::Result<()> {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    bail!(
                        "{} is not empty; `sigil init` only creates a new CA in a missing or empty directory",
                        self.root.display()
                    );
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.root)
                    .with_context(|| format!("creating {}", self.root.display()))?;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", self.root.display()));
            }
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", self.root.display()))?;
        Ok(())
    }

    /// Takes the data dir's CA lock (`DIR/ca/lock`) for as long as the
    /// returned file is open: `sigil serve` holds it while it serves, and
    /// offline rotations while they change the CA's files, so that no two
    /// processes change them at once.
    ///
    /// # Errors
    ///
    /// The directory holds no CA, or another process holds the lock.
    pub fn lock_ca(&self) -> anyhow::Result<fs::File> {
        self.require_initialised()?;
        let path = self.ca_dir().join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => bail!(
                "another process holds {}: a `sigil serve` (or an offline rotation) is using \
                 this data dir",
                path.display()
            ),
            Err(fs::TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Checks that the directory holds an initialised CA.
    ///
    /// # Errors
    ///
    /// The CA files are missing.
    pub fn require_initialised(&self) -> anyhow::Result<()> {
        if !self.root_cert().is_file() || !self.issuing_key().is_file() {
            bail!(
                "{} holds no Sigil CA; create one with `sigil init --trust-domain <name> --data-dir {}`",
                self.root.display(),
                self.root.display()
            );
        }
        Ok(())
    }
}

/// Writes a private key (or any secret) with mode 0600, atomically: the file
/// never exists with wider permissions or half-written.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        // Directories that hold keys are owner-only too.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_atomically(path, contents, 0o600)
}

/// Writes a public file (certificates, bundles) with mode 0644, atomically.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_public(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, contents, 0o644)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    // Named for this process and write: two processes (the server, and a
    // local command) writing the same file never share a temporary.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let temporary = parent.join(format!(
        ".{}.{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    // The umask may have narrowed the mode; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a private key (or other secret) file, refusing one that group or
/// others may read: a key that leaked that way must not be used silently.
///
/// # Errors
///
/// The file cannot be read, is not UTF-8, or its mode lets anyone but its
/// owner read it.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by group or others (mode {mode:03o}); it holds a private key: \
             run `chmod 600 {}` (and check who may have read it)",
            path.display(),
            path.display()
        );
    }
    read_text(path)
}

/// Reads a UTF-8 file, naming it in the error.
///
/// # Errors
///
/// The file cannot be read or is not UTF-8.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_written_with_mode_0600_even_over_a_wider_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, b"new").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn create_empty_accepts_missing_and_empty_and_refuses_content() {
        let dir = tempfile::tempdir().unwrap();
        DataDir::new(dir.path().join("missing"))
            .create_empty()
            .unwrap();
        DataDir::new(dir.path().join("missing"))
            .create_empty()
            .unwrap();
        fs::write(dir.path().join("missing/x"), "x").unwrap();
        let error = DataDir::new(dir.path().join("missing"))
            .create_empty()
            .unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
    }
}
