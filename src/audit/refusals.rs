//! Floods of anonymous refusals are counted, not logged one by one: per
//! reason and source, per minute, so an attacker cannot grow the log without
//! bound.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::json;
use time::OffsetDateTime;

use super::AuditEvent;

/// The action of an aggregated refusal record.
pub const REFUSE_ACTION: &str = "attestation.refuse";

/// Refusals of one reason from one source: how many, since when.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    since: Option<OffsetDateTime>,
}

/// At most this many (reason, source) pairs are told apart per period;
/// beyond it, a refusal is counted under its reason alone (no source), and
/// beyond twice as many, under reason "other". A flood from many addresses
/// thus cannot hide a reason that names who was refused (an agent calling
/// admin routes), until the reasons themselves number in the thousands.
const MAX_SOURCES: usize = 1000;

/// The source a refusal is counted under: IPv6 addresses by their /64, the
/// smallest block one client is usually given, so that rotating addresses
/// does not make new sources.
fn source_key(source: Option<IpAddr>) -> Option<IpAddr> {
    match source {
        Some(IpAddr::V6(ip)) => {
            let mut octets = ip.octets();
            octets[8..].fill(0);
            Some(IpAddr::from(octets))
        }
        other => other,
    }
}

/// Counts refusals until they are drained into audit events.
#[derive(Debug, Default)]
pub struct RefusalCounter {
    counts: Mutex<BTreeMap<(String, Option<IpAddr>), Tally>>,
}

impl RefusalCounter {
    /// Counts one refusal.
    pub fn count(&self, reason: &str, source: Option<IpAddr>) {
        if let Ok(mut counts) = self.counts.lock() {
            let mut key = (reason.to_owned(), source_key(source));
            if !counts.contains_key(&key) && counts.len() >= MAX_SOURCES {
                key.1 = None;
                if !counts.contains_key(&key) && counts.len() >= 2 * MAX_SOURCES {
                    key = ("other".to_owned(), None);
                }
            }
            let tally = counts.entry(key).or_default();
            tally.count += 1;
            tally.since.get_or_insert_with(OffsetDateTime::now_utc);
        }
    }

    /// One event per (reason, source) counted since the last drain.
    pub fn drain(&self) -> Vec<AuditEvent> {
        let Ok(mut counts) = self.counts.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *counts)
            .into_iter()
            .map(|((reason, source), tally)| {
                AuditEvent::now(
                    "anonymous",
                    REFUSE_ACTION,
                    source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                    json!({
                        "reason": reason,
                        "count": tally.count,
                        "since": tally.since.map(crate::rfc3339::format),
                    }),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_becomes_one_record_per_reason_and_source() {
        let counter = RefusalCounter::default();
        let source: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..10_000 {
            counter.count("unknown join token", Some(source));
        }
        counter.count("join token has expired", Some(source));
        let events = counter.drain();
        assert_eq!(events.len(), 2);
        let flood = events
            .iter()
            .find(|e| e.details["reason"] == "unknown join token")
            .map(|e| e.details["count"].clone());
        assert_eq!(flood, Some(json!(10_000)));
        assert!(counter.drain().is_empty());
    }

    #[test]
    fn rotating_sources_cannot_grow_the_log_without_bound() {
        let counter = RefusalCounter::default();
        for i in 0..5_000u32 {
            // One /64, many addresses: one source.
            let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, (i >> 16) as u16, i as u16);
            counter.count("unknown join token", Some(IpAddr::V6(ip)));
            // Many IPv4 sources: capped.
            counter.count("unknown join token", Some(IpAddr::from(i.to_be_bytes())));
        }
        let events = counter.drain();
        assert!(events.len() <= MAX_SOURCES + 1, "{}", events.len());
        assert!(
            events
                .iter()
                .all(|e| e.details["reason"] == "unknown join token")
        );
        let total: u64 = events
            .iter()
            .map(|e| e.details["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(total, 10_000, "every refusal is counted");
    }

    #[test]
    fn a_flood_from_many_sources_does_not_hide_who_called_an_admin_route() {
        let counter = RefusalCounter::default();
        for i in 0..5_000u32 {
            counter.count("unknown join token", Some(IpAddr::from(i.to_be_bytes())));
        }
        let probe = "admin route called by spiffe://example.org/agents/nosy";
        counter.count(probe, Some(IpAddr::from([192, 0, 2, 9])));
        let events = counter.drain();
        assert!(events.len() <= 2 * MAX_SOURCES, "{}", events.len());
        assert!(
            events.iter().any(|e| e.details["reason"] == probe),
            "the probe's reason was folded away"
        );
    }

    #[test]
    fn thousands_of_reasons_fold_into_other_and_stay_bounded() {
        let counter = RefusalCounter::default();
        for i in 0..10_000u32 {
            counter.count(&format!("reason {i}"), Some(IpAddr::from(i.to_be_bytes())));
        }
        let events = counter.drain();
        assert!(events.len() <= 2 * MAX_SOURCES + 1, "{}", events.len());
        assert!(events.iter().any(|e| e.details["reason"] == "other"));
    }
}
