//! Which connections the server takes: at most so many at once, and at most
//! so many from one IP address, so that one client cannot occupy every
//! slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; further clients wait in the backlog.
    pub total: usize,
    /// Connections from one IP address; further ones are closed at once.
    pub per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            total: 4096,
            per_ip: 256,
        }
    }
}

/// Hands out connection slots.
#[derive(Debug)]
pub(super) struct Admission {
    limits: ConnectionLimits,
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's claim on its slots; released on drop.
#[derive(Debug)]
pub(super) struct Slot {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.per_ip.lock()
            && let Some(count) = counts.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub(super) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            total: Arc::new(Semaphore::new(limits.total)),
            per_ip: Arc::default(),
        }
    }

    /// Waits for a free slot overall.
    pub(super) async fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.total).acquire_owned().await.ok()
    }

    /// Admits a connection from `ip` with a reserved slot, unless that
    /// address already holds its share.
    pub(super) fn admit(&self, reserved: OwnedSemaphorePermit, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.per_ip.lock().ok()?;
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.limits.per_ip {
            return None;
        }
        *count += 1;
        Some(Slot {
            _total: reserved,
            ip,
            per_ip: Arc::clone(&self.per_ip),
        })
    }

    /// Waits until every connection has ended (all slots are back).
    pub(super) async fn all_closed(&self) {
        let all = u32::try_from(self.limits.total).unwrap_or(u32::MAX);
        let _ = self.total.acquire_many(all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_address_gets_its_share_and_others_still_get_in() {
        let admission = Admission::new(ConnectionLimits {
            total: 10,
            per_ip: 2,
        });
        let greedy: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        let mut held = Vec::new();
        for _ in 0..2 {
            let reserved = admission.reserve().await.unwrap_or_else(|| unreachable!());
            held.push(
                admission
                    .admit(reserved, greedy)
                    .unwrap_or_else(|| unreachable!()),
            );
        }
        let reserved = admission.reserve().await.unwrap_or_else(|| unreachable!());
        assert!(admission.admit(reserved, greedy).is_none());
        let reserved = admission.reserve().await.unwrap_or_else(|| unreachable!());
        assert!(admission.admit(reserved, other).is_some());
        held.pop();
        let reserved = admission.reserve().await.unwrap_or_else(|| unreachable!());
        assert!(
            admission.admit(reserved, greedy).is_some(),
            "a freed slot is reusable"
        );
    }
}
