//! Tells systemd how the server is doing (`Type=notify`), through the
//! datagram socket named by `$NOTIFY_SOCKET`: `READY=1` once it listens,
//! `RELOADING=1` then `READY=1` around a SIGHUP reload, and `STOPPING=1`
//! when it shuts down. Without `$NOTIFY_SOCKET`, nothing is sent.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (such as `READY=1`) to systemd, if it asked for it; a
/// failure is logged, never fatal.
pub(super) fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket, state) {
        tracing::warn!(%error, state, "telling systemd how the server is doing failed");
    }
}

fn send(socket: &OsStr, state: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    match socket.as_bytes().strip_prefix(b"@") {
        // An abstract socket (Linux): `@` stands for the leading NUL.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sender.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            sender.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reaches_a_path_socket_and_an_abstract_one() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buffer = [0u8; 64];
        let read = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("sigil-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let read = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"STOPPING=1");
    }
}
