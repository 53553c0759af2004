//! The process's open-file limit. Every connection holds a file
//! descriptor, and the usual soft limit (1,024) is below the default
//! connection cap, so `sigil serve` raises its soft limit to the hard
//! limit at start-up, as servers commonly do, and says so when even the
//! hard limit is below what the connection cap needs.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for the store, the listener, logs and the like.
const RESERVED: u64 = 64;

/// Raises the soft open-file limit to the hard limit; warns when the
/// result cannot hold `connections` connections.
pub(super) fn raise_for(connections: usize) {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit");
            return;
        }
    };
    let mut limit = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                limit = hard;
                tracing::info!(from = soft, to = hard, "raised the open-file limit");
            }
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open-file limit"),
        }
    }
    let needed = connections as u64 + RESERVED;
    if limit < needed {
        tracing::warn!(
            limit,
            max_connections = connections,
            "the open-file limit is below what max_connections needs; raise the hard \
             limit (ulimit -Hn, LimitNOFILE=) or lower max_connections"
        );
    }
}
